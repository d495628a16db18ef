#!/usr/bin/env bash
# Horovod compiles from source: it needs g++ and cmake.
set -euo pipefail
command -v g++ >/dev/null && command -v cmake >/dev/null && exit 0
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ cmake

#!/usr/bin/env bash
# PostgreSQL server binaries for the `postgres` tests (they start and stop their own server).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql

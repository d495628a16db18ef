#!/usr/bin/env bash
# Debian's Chromium, for the test that renders report.html in a real headless browser.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

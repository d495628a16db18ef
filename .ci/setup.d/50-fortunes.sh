#!/usr/bin/env bash
# Debian's fortunes (and fortune-mod): the text corpus of the fortunes example and its tests
# (docs/corpus.md): plain files under /usr/share/games/fortunes/, records separated by `%` lines.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [[ -f /usr/share/games/fortunes/fortunes && -f /usr/share/games/fortunes/science ]]; then
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends fortunes fortune-mod

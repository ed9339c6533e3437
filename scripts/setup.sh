#!/usr/bin/env bash
# Installs everything pmemlab needs on a Debian/Ubuntu host, then its npm dependencies, then builds it.
# Safe to run again. Needs root (or sudo) for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(grep -v '^#' scripts/packages.txt | grep -v '^$')
# Ubuntu names the generic kernel differently.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1 && apt-cache show linux-image-generic >/dev/null 2>&1; then
  packages=("${packages[@]/linux-image-amd64/linux-image-generic}")
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
echo "pmemlab is ready: ./bin/run.js --help" >&2

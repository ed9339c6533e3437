#!/usr/bin/env bash
# Installs everything pmemlab needs on a Debian/Ubuntu host, then its npm dependencies, then builds it.
# Safe to run again. Needs root (or sudo) for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update

packages=()
while read -r package; do
  case $package in '' | '#'*) continue ;; esac
  # Ubuntu names the generic kernel differently.
  [ "$package" = linux-image-amd64 ] && ! apt-cache show "$package" >/dev/null 2>&1 && package=linux-image-generic
  if apt-cache show "$package" >/dev/null 2>&1; then
    packages+=("$package")
  else
    echo "setup: $package is not available on this release: skipped" >&2
  fi
done < scripts/packages.txt
"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
echo "pmemlab is ready: ./bin/run.js --help" >&2

#!/usr/bin/env bash
# Install the Debian packages that bindep.txt lists for the given profiles.
#
#   tools/install-system-packages.sh [PROFILE ...]
#
# Needs bindep: run it through tools/run, which provides one in
# .venv-tools/. Installs only what is missing; apt is not touched when
# nothing is.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bindep=${BINDEP:-$root/.venv-tools/bin/bindep}

# bindep exits 1 when packages are missing; -b prints just their names.
missing=$("$bindep" -f "$root/bindep.txt" -b "$@" || true)
if [ -z "$missing" ]; then
    echo "install-system-packages: all bindep packages present ($*)"
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo=sudo
fi
echo "install-system-packages: installing" $missing
$sudo apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
    --no-install-recommends $missing

#!/usr/bin/env bash
# Installs the Debian packages flxemu needs (when root), or prints the exact
# apt line to run.  Usage: scripts/deps.sh [--tests|--fuzz]
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc g++ libc6-dev python3
      libopenblas-dev liblapacke-dev libsleef-dev zlib1g-dev libpcre2-dev libcjson-dev)
# the tests also run flxemu under Open MPI (optional for the program itself)
if [ "${1:-}" = "--tests" ]; then pkgs+=(libcriterion-dev openmpi-bin libopenmpi-dev); fi
if [ "${1:-}" = "--fuzz" ]; then pkgs+=(clang libclang-rt-dev); fi   # scripts/fuzz.sh

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "flxemu: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "flxemu: missing packages; run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# Make sure the host has the Debian packages a target needs.
#   targets/host-packages.sh COMMAND:PACKAGE [COMMAND:PACKAGE ...]
# COMMAND is a program on PATH, an absolute path that must exist (a header file), or
# "venv" for python3's ability to create a virtual environment with pip (Debian ships
# that part as python3-venv).
# Missing packages are installed with apt-get when we are root; otherwise the script
# says which ones are missing and how to install them, and fails.
set -euo pipefail

missing=()
for pair in "$@"; do
  check=${pair%%:*}; rest=${pair#*:}
  if [[ $check == venv ]]; then
    python3 -c 'import ensurepip; ensurepip.version()' >/dev/null 2>&1 || missing+=("$rest")
  elif [[ $check == /* ]]; then
    [[ -e $check ]] || missing+=("$rest")
  else
    command -v "$check" >/dev/null 2>&1 || missing+=("$rest")
  fi
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "apflab: missing system packages: ${missing[*]}" >&2
  echo "apflab: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apflab: missing system packages (${missing[*]}) and no apt-get to install them" >&2
  exit 1
fi
echo "apflab: installing system packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

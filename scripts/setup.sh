#!/usr/bin/env bash
# Creates .venv and installs the project. Usage: scripts/setup.sh [requirements file]
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
# The contact-code posters print store names in Chinese: Debian's Noto CJK when no CJK font is there.
if ! find /usr/share/fonts /usr/local/share/fonts \( -iname '*CJK*' -o -iname 'wqy*' \) -print -quit 2>/dev/null \
     | grep -q . && command -v apt-get >/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  if ! { "${sudo_cmd[@]}" apt-get update -qq \
        && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           fonts-noto-cjk >/dev/null; }; then
    echo "warning: could not install fonts-noto-cjk; export-codes and the poster download need a CJK font" >&2
  fi
fi
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is required ($python)" >&2
  exit 1
fi
# A venv left without pip (ensurepip was missing) is made again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  if ! "$python" -m venv --clear .venv 2>/dev/null; then
    # Debian ships venv separately.
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    "$python" -m venv --clear .venv
  fi
fi
# One stamp per requirements file, so that command one and command two do not
# reinstall after each other.
name=$(basename "$requirements" .txt)
stamp=".venv/.installed-$name-$(cat "$requirements" requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$requirements"
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null \
    || .venv/bin/python -m pip install --quiet --no-deps -e .
  # Only this file's old stamps: "requirements-*" would also match requirements-test's.
  rm -f ".venv/.installed-$name-"????????????????
  touch "$stamp"
fi

#!/usr/bin/env bash
# Command two: install what the tests need (Debian's Chromium, CJK fonts and
# PostgreSQL when missing) and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  if ! { "${sudo_cmd[@]}" apt-get update -qq \
        && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           "${need[@]}" >/dev/null; }; then
    echo "warning: could not install ${need[*]}; the tests that need them fail under CI=true and skip otherwise" >&2
  fi
fi

scripts/setup.sh requirements-test.txt
set +e
# Imports only point down (layers in pyproject.toml), then lint and types.
lint=0
echo "lint-imports, ruff, mypy:"
.venv/bin/lint-imports --no-cache | tail -n 4 || lint=1
.venv/bin/ruff check --quiet . || lint=1
.venv/bin/mypy || lint=1
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
if [ "$lint" != 0 ]; then
  echo "error: lint-imports, ruff or mypy failed (see above)" >&2
  [ "$status" = 0 ] && status=1
fi
exit "$status"

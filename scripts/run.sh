#!/usr/bin/env bash
# Command one: set up, migrate, seed the demo into an empty database, then run
# the scheduler sidecar beside the console on http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p data

python -m console migrate
credentials=data/demo-logins.txt
python -m console seed-demo --credentials-file "$credentials" >/dev/null
if [ -f "$credentials" ]; then
  echo
  cat "$credentials"
  echo
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

python scheduler.py > data/scheduler.log 2>&1 &
pids+=($!)
echo "scheduler sidecar started (log: data/scheduler.log)"
echo "console: http://localhost:${PORT:-8501}  (log in with one of the demo logins above)"
streamlit run console/server.py --server.port "${PORT:-8501}" &
pids+=($!)
wait -n "${pids[@]}"

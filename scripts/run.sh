#!/usr/bin/env bash
# Command one: set up, migrate, seed the demo into an empty database, then run
# the scheduler sidecar beside the console on http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p data

# Without a real WeCom app configured, the demo runs against the built-in
# simulator (WeCom API, QR login, app messages, robot inbox) on loopback; the
# console says so. The simulator posts member changes to the console's callback.
simulator=0
if [ -z "${WECOM_CORP_ID:-}" ]; then
  simulator=1
  export WECOM_API_BASE="http://127.0.0.1:${WECOM_SIMULATOR_PORT:-8502}"
  export WECOM_LOGIN_BASE="$WECOM_API_BASE" WECOM_OAUTH_BASE="$WECOM_API_BASE"
  export WECOM_CORP_ID=wwdemo0000000001 WECOM_SECRET=demo-simulator-secret WECOM_AGENT_ID=1000002
  export WECOM_CALLBACK_TOKEN=demo-callback-token
  export WECOM_CALLBACK_AES_KEY=c3RvcmUtd2Vjb20tY29uc29sZS1kZW1vLWFlcy1rZXk
  # The demo's robots live in the simulator on loopback, which alert channels may not reach otherwise.
  export ALERT_ALLOWED_HOSTS="${ALERT_ALLOWED_HOSTS:-127.0.0.1,localhost}"
  export CONSOLE_BASE_URL="http://localhost:${PORT:-8501}"
  export CAPACITY_SYNC_INTERVAL_SECONDS="${CAPACITY_SYNC_INTERVAL_SECONDS:-60}"
fi

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

if [ "$simulator" = 1 ]; then
  # One BJ store's member leaves the company four minutes after start; one Shanghai
  # store's account reaches the switch level after two and a half and the store moves
  # to its standby; customers scan the store codes (the funnel's adds, attributed by State).
  python -m console simulator --port "${WECOM_SIMULATOR_PORT:-8502}" --from-database --grow 3 \
    --callback-url "$CONSOLE_BASE_URL/wecom/callback" --leave-after 240 --switch-after 150 --scans-per-minute 6 \
    > data/simulator.log 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    grep -q "WeCom simulator on" data/simulator.log 2>/dev/null && break
    sleep 0.2
  done
  echo "WeCom simulator, app-message and robot inboxes on $WECOM_API_BASE (log: data/simulator.log)"
fi
python scheduler.py > data/scheduler.log 2>&1 &
pids+=($!)
echo "scheduler sidecar started (log: data/scheduler.log)"
echo "console: http://localhost:${PORT:-8501}  (log in with one of the demo logins above)"
streamlit run console/server.py --server.port "${PORT:-8501}" &
pids+=($!)
wait -n "${pids[@]}"

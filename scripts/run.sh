#!/usr/bin/env bash
# Set up and run the app locally: Azurite + function_app.py on devhost, then start the
# scheduler and print a curl that schedules a job. Installs only what running needs
# (scripts/setup-runtime.sh), not the test tooling. APP_DIR runs an app of your own instead
# (a folder with its function_app.py, host.json, and jobs_api/ + jobs_core/ copied in).
# Ctrl-C or SIGTERM stops everything this script started (Azurite, devhost), then it exits;
# so does devhost or Azurite exiting on its own.
# Env: APP_DIR (this repository), PORT (7071), DEVHOST_KEY (generated if unset), AZURITE_PORT
# (10000; queue and table on the next two ports), AZURITE_LOCATION (.azurite-data),
# DEVHOST_DATA_DIR ($APP_DIR/.devhost-data).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_DIR="$(cd "${APP_DIR:-$REPO}" && pwd)"  # a relative APP_DIR: from where run.sh was started
cd "$REPO"
[[ -f "$APP_DIR/function_app.py" ]] || { echo "run.sh: no function_app.py in $APP_DIR" >&2; exit 2; }

bash scripts/setup-runtime.sh
PORT="${PORT:-7071}"
AZURITE_PORT="${AZURITE_PORT:-10000}"
AZURITE_LOCATION="${AZURITE_LOCATION:-.azurite-data}"
DEVHOST_DATA_DIR="${DEVHOST_DATA_DIR:-$APP_DIR/.devhost-data}"
KEY="${DEVHOST_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')}"
STOP_SECONDS=10  # each process gets this long to exit after SIGTERM, then SIGKILL

pids=()
stopping=0
alive() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
stop_all() {
  [[ $stopping -eq 1 ]] && return 0
  stopping=1
  [[ ${#pids[@]} -eq 0 ]] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local i
  for ((i = 0; i < STOP_SECONDS * 10; i++)); do
    alive "${pids[@]}" || break
    sleep 0.1
  done
  if alive "${pids[@]}"; then
    echo "run.sh: still running after ${STOP_SECONDS} s: SIGKILL" >&2
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
}
trap 'echo; echo "run.sh: stopping"; stop_all; exit 130' INT
trap 'echo "run.sh: SIGTERM: stopping"; stop_all; exit 143' TERM
trap stop_all EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$AZURITE_PORT"; then
  echo "Using the Azurite (or storage emulator) already listening on 127.0.0.1:$AZURITE_PORT"
else
  mkdir -p "$AZURITE_LOCATION"
  .azurite/node_modules/.bin/azurite --silent --location "$AZURITE_LOCATION" \
    --skipApiVersionCheck --loose --disableTelemetry \
    --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --queueHost 127.0.0.1 --queuePort $((AZURITE_PORT + 1)) \
    --tableHost 127.0.0.1 --tablePort $((AZURITE_PORT + 2)) > "$AZURITE_LOCATION/azurite.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do port_open "$AZURITE_PORT" && break; sleep 0.1; done
  if ! port_open "$AZURITE_PORT"; then
    echo "run.sh: Azurite did not start; its log ($AZURITE_LOCATION/azurite.log):" >&2
    tail -20 "$AZURITE_LOCATION/azurite.log" >&2 || true
    exit 1
  fi
  echo "Azurite started on 127.0.0.1:$AZURITE_PORT-$((AZURITE_PORT + 2)) (data in $AZURITE_LOCATION/)"
fi

[ -f "$APP_DIR/local.settings.json" ] || cp local.settings.sample.json "$APP_DIR/local.settings.json"
if [ "$AZURITE_PORT" != 10000 ]; then
  export JOBS_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${AZURITE_PORT}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$((AZURITE_PORT + 1))/devstoreaccount1;"
fi

# the key in the environment, not --key: a command line is readable by every user
DEVHOST_KEY="$KEY" .venv/bin/python -m devhost --app-dir "$APP_DIR" --port "$PORT" \
  --data-dir "$DEVHOST_DATA_DIR" &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$PORT/admin/host/status" >/dev/null 2>&1 && break
  alive "${pids[-1]}" || break
  sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$PORT/admin/host/status" >/dev/null 2>&1; then
  echo "run.sh: devhost did not start on port $PORT (its output is above)" >&2
  exit 1
fi
echo
echo "Starting the scheduler (one eternal orchestrator per slot):"
curl -fsS -X POST "http://127.0.0.1:$PORT/api/scheduler/start" -H "x-functions-key: $KEY"
# a handler this app registered, for the example below (the OpenAPI document lists them; the
# built-in http handler needs a payload of its own)
HANDLER=$(curl -fsS "http://127.0.0.1:$PORT/api/openapi.json" -H "x-functions-key: $KEY" |
  .venv/bin/python -c 'import json, sys
names = json.load(sys.stdin)["components"]["schemas"]["JobRequest"]["properties"]["handler"]["enum"]
print(next(name for name in names if name != "http"))' 2>/dev/null || echo echo)
echo
cat <<MSG

Ready. Schedule a job (runs in 5 s) and wait up to 10 s for its result:

  curl -s -X POST "http://127.0.0.1:$PORT/api/jobs?wait=10" -H "x-functions-key: $KEY" \\
       -H "Content-Type: application/json" -d '{"handler": "$HANDLER", "payload": {"hello": "world"}, "delay": 5}'

Function key: $KEY      Scheduler status: curl -s http://127.0.0.1:$PORT/api/scheduler -H "x-functions-key: $KEY"
Ctrl-C (or SIGTERM) stops what this script started.
MSG
status=0
wait -n "${pids[@]}" || status=$?
echo "run.sh: a process it started exited (status $status): stopping the rest" >&2
exit "$status"

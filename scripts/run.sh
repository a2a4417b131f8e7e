#!/usr/bin/env bash
# Set up and run the app locally: Azurite + function_app.py on devhost, then start the
# scheduler and print a curl that schedules a job. Ctrl-C stops everything.
# Env: PORT (7071), DEVHOST_KEY (generated if unset), AZURITE_PORT (10000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
PORT="${PORT:-7071}"
AZURITE_PORT="${AZURITE_PORT:-10000}"
KEY="${DEVHOST_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')}"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null; }
trap cleanup EXIT INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$AZURITE_PORT"; then
  echo "Using the Azurite (or storage emulator) already listening on 127.0.0.1:$AZURITE_PORT"
else
  mkdir -p .azurite-data
  .azurite/node_modules/.bin/azurite --silent --location .azurite-data --skipApiVersionCheck \
    --loose --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --queueHost 127.0.0.1 --queuePort $((AZURITE_PORT + 1)) \
    --tableHost 127.0.0.1 --tablePort $((AZURITE_PORT + 2)) > .azurite-data/azurite.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do port_open "$AZURITE_PORT" && break; sleep 0.1; done
  echo "Azurite started on 127.0.0.1:$AZURITE_PORT (data in .azurite-data/)"
fi

[ -f local.settings.json ] || cp local.settings.sample.json local.settings.json
if [ "$AZURITE_PORT" != 10000 ]; then
  export JOBS_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${AZURITE_PORT}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$((AZURITE_PORT + 1))/devstoreaccount1;"
fi

.venv/bin/python -m devhost --app-dir . --port "$PORT" --key="$KEY" &
pids+=($!)
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$PORT/admin/host/status" >/dev/null 2>&1 && break
  sleep 0.1
done
echo
echo "Starting the scheduler (one eternal orchestrator per slot):"
curl -fsS -X POST "http://127.0.0.1:$PORT/api/scheduler/start" -H "x-functions-key: $KEY"
echo
cat <<MSG

Ready. Schedule a job (runs in 5 s) and wait up to 10 s for its result:

  curl -s -X POST "http://127.0.0.1:$PORT/api/jobs?wait=10" -H "x-functions-key: $KEY" \\
       -H "Content-Type: application/json" -d '{"handler": "echo", "payload": {"hello": "world"}, "delay": 5}'

Function key: $KEY      Scheduler status: curl -s http://127.0.0.1:$PORT/api/scheduler -H "x-functions-key: $KEY"
Ctrl-C stops devhost and Azurite.
MSG
wait

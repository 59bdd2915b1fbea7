#!/usr/bin/env bash
# Local demo without Kubernetes: a fresh redis-server, the real publisher, and
# a shell loop standing in for KEDA (a STAND-IN, not KEDA: every second it
# starts one `jobs` process per pending event, at most MAX_JOBS at a time,
# which is what the ScaledJob's accurate strategy does). Stops by itself when
# DEMO_EVENTS events are done, or on Ctrl-C; cleans up by PID.
set -euo pipefail

DEMO_EVENTS=${DEMO_EVENTS:-30}
MAX_JOBS=${MAX_JOBS:-10}
BIN=${BIN:-bin}
for b in "$BIN/jobs" "$BIN/publisher"; do
  [ -x "$b" ] || { echo "missing $b: run 'go tool task build' first" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install -y redis-server" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "${jobpids:-}" ] && kill -TERM $jobpids 2>/dev/null || true
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ -n "${redis_pid:-}" ] && kill -KILL "$redis_pid" 2>/dev/null || true
  echo "logs kept in $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 16379)
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes --logfile "$work/redis.log" &
redis_pid=$!
cli() { redis-cli -p "$port" "$@"; }
until cli ping >/dev/null 2>&1; do sleep 0.1; done

export REDIS_ADDR=127.0.0.1:$port QUEUE=events LEASE_DURATION=10s CLAIM_TIMEOUT=3s
PUBLISH_INTERVAL=3s BATCH_SIZE=5 WAIT_MIN=1 WAIT_MAX=5 PUBLISH_LIMIT=$DEMO_EVENTS REAP_INTERVAL=5s \
  HTTP_ADDR=127.0.0.1:0 "$BIN/publisher" >"$work/publisher.log" 2>&1 &
pids+=($!)

echo "redis-keda local demo: redis 127.0.0.1:$port, $DEMO_EVENTS events, at most $MAX_JOBS jobs at once"
echo "logs: $work   (Ctrl-C to stop)"
printf '%-8s %8s %10s %5s %8s %6s\n' time pending processing dead running done
started=0 jobpids=""
start=$(date +%s)
while :; do
  # Reap finished jobs.
  alive=""
  for p in $jobpids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  jobpids=$alive
  running=$(wc -w <<<"$jobpids")
  pending=$(cli llen events)
  # The KEDA stand-in: one job per pending event, under the cap.
  want=$(( pending < MAX_JOBS - running ? pending : MAX_JOBS - running ))
  for _ in $(seq 1 "$want"); do
    started=$((started + 1))
    "$BIN/jobs" >"$work/job-$started.log" 2>&1 &
    jobpids="$jobpids $!"
  done
  acked=$(cat "$work"/job-*.log 2>/dev/null | grep -c '"outcome":"acked"' || true)
  printf '%-8s %8s %10s %5s %8s %6s\n' "+$(( $(date +%s) - start ))s" "$pending" "$(cli llen '{events}:processing')" \
    "$(cli llen '{events}:dead')" "$(wc -w <<<"$jobpids")" "$acked"
  if [ "$acked" -ge "$DEMO_EVENTS" ] && [ "$(cli llen events)" = 0 ] && [ "$(cli llen '{events}:processing')" = 0 ]; then
    break
  fi
  sleep 1
done
echo "done: $acked events acked by $started job processes in $(( $(date +%s) - start ))s; dead letters: $(cli llen '{events}:dead')"

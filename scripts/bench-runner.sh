#!/usr/bin/env bash
# Measures `redis-keda run` (the command runner) side by side in one run, on
# one fresh redis-server (started here on a free port, killed on exit), each
# figure the median of RUNS processes (scripts/bench exec):
#
#   run true     redis-keda run -- true: exec -> claim -> run true -> ack -> exit
#   true         true alone (the child's own time)
#   jobs         today's sleep job, redis-keda jobs with {"wait":0}
#   run 1 MiB    redis-keda run -- sh -c 'cat >/dev/null' given a 1 MiB payload
#                on stdin: time and the runner's peak RSS
#   cat 1 MiB    sh -c 'cat >/dev/null' reading the same 1 MiB from a file
#
# overhead = run true - true (target <= 10 ms); the runner's own peak RSS
# (VmHWM of the runner process, not its child; target <= 12 MiB). Nothing is
# asserted: the figures depend on the machine and its load (printed first).
#
# Usage: scripts/bench-runner.sh   (BENCH_RUNS=20)
set -euo pipefail
shopt -s inherit_errexit

RUNS=${BENCH_RUNS:-20}
MIB=1048576
cd "$(dirname "$0")/.."
for tool in go redis-server redis-cli; do
	command -v "$tool" >/dev/null || { echo "bench-runner: $tool not found on PATH" >&2; exit 1; }
done
tmp=$(mktemp -d)
redis_pid=
cleanup() {
	[[ -n $redis_pid ]] && { kill -9 "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf 'bench-runner: %s\n' "$*" >&2; }

log "building redis-keda (as the image does: static, stripped) and the bench helper into $tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/redis-keda" ./cmd/redis-keda
go build -o "$tmp/bench" ./scripts/bench
bench="$tmp/bench"
port=$("$bench" free-port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 100); do [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break; sleep 0.1; done
addr=127.0.0.1:$port
kv() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
ours() { local out; out=$("$bench" exec -addr "$addr" -runs "$RUNS" -rss-runs 5 "$@") || return 1; log "$*: $out"; echo "$out"; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == 0) print "n/a"; else printf "%.1f", k / 1024 }'; }

head -c $((MIB - 19)) /dev/zero | tr '\0' x | sed 's/^/{"wait":0,"pad":"/; s/$/"}/' >"$tmp/payload"
export CLAIM_TIMEOUT=2s LOG_LEVEL=info
o_run=$(ours -acked -- "$tmp/redis-keda" run -- true)
o_true=$(ours -baseline -- true)
o_jobs=$(ours -acked -- "$tmp/redis-keda" jobs)
o_big=$(ours -acked -payload-bytes $MIB -- "$tmp/redis-keda" run -- sh -c 'cat >/dev/null')
o_cat=$(ours -baseline -- sh -c "cat >/dev/null <$tmp/payload")

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load $(cut -d' ' -f1 /proc/loadavg); medians of $RUNS"
printf '%-48s %10s %10s\n' "process" "median ms" "peak RSS MiB"
row() { printf '%-48s %10s %10s\n' "$1" "$(kv "$2" median_ms)" "$(mib "$(kv "$2" peak_rss_kib)")"; }
row "redis-keda run -- true" "$o_run"
row "true alone" "$o_true"
row "redis-keda jobs, {\"wait\":0} (the sleep)" "$o_jobs"
row "redis-keda run -- sh -c 'cat >/dev/null', 1 MiB" "$o_big"
row "sh -c 'cat >/dev/null' <1 MiB file alone" "$o_cat"
echo
awk -v r="$(kv "$o_run" median_ms)" -v t="$(kv "$o_true" median_ms)" -v j="$(kv "$o_jobs" median_ms)" \
	-v b="$(kv "$o_big" median_ms)" -v c="$(kv "$o_cat" median_ms)" 'BEGIN {
	printf "runner overhead over the child (run true - true): %.2f ms (target <= 10 ms)\n", r - t
	printf "runner vs the sleep job (run true / jobs): %.2f\n", r / j
	printf "1 MiB through stdin, overhead over the child (run - cat alone): %.2f ms\n", b - c
}'
echo "runner peak RSS: $(mib "$(kv "$o_run" peak_rss_kib)") MiB (target <= 12 MiB); with a 1 MiB payload: $(mib "$(kv "$o_big" peak_rss_kib)") MiB"

#!/usr/bin/env bash
# What Redis spends per event (issue 19): ours against the textbook reliable
# queue (redis.io "Pattern: Reliable queue": LPUSH, BRPOPLPUSH into a
# processing list, LREM) on ONE fresh redis-server (started here on a free
# port, killed on exit), in the same run (scripts/bench cost, cost.go):
#
#   round trips   commands the client sent, per event and stage
#   usec          Redis's time executing them (INFO commandstats)
#   cpu           Redis's process CPU (INFO used_cpu_user + used_cpu_sys:
#                 also reading, parsing, replying)
#   bytes         MEMORY USAGE of the real keys per event pending, in flight,
#                 acked (the finished marker, kept 2 minutes)
#   jobs process  what one real `jobs` process sends from start to exit
#                 (MONITOR), its connection handshake included
#
# KEDA's poll (KEDA v2.21's redis scaler: one EVAL of TYPE + LLEN per poll)
# is the same for both queues and counted per poll. Nothing is asserted.
#
# Usage: scripts/bench-cost.sh   (BENCH_COST_EVENTS=2000 BENCH_COST_INFLIGHT=40
#                                 BENCH_COST_HEARTBEATS=3: heartbeats of a job
#                                 in the second per-lifecycle total; the
#                                 first has none: a job shorter than
#                                 LEASE_DURATION/3, 10 s by default)
set -euo pipefail
shopt -s inherit_errexit

N=${BENCH_COST_EVENTS:-2000}
INFLIGHT=${BENCH_COST_INFLIGHT:-40}
HB=${BENCH_COST_HEARTBEATS:-3}
cd "$(dirname "$0")/.."
for tool in go redis-server redis-cli; do
	command -v "$tool" >/dev/null || { echo "bench-cost: $tool not found on PATH" >&2; exit 1; }
done
tmp=$(mktemp -d)
redis_pid=
cleanup() {
	[[ -n $redis_pid ]] && { kill -9 "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf 'bench-cost: %s\n' "$*" >&2; }

log "building jobs and the bench helper into $tmp"
go build -o "$tmp/jobs" ./jobs
go build -o "$tmp/bench" ./scripts/bench
port=$("$tmp/bench" free-port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 100); do [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break; sleep 0.1; done
[[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] || { echo "bench-cost: redis-server not ready; its log:" >&2; cat "$tmp/redis.log" >&2; exit 1; }
load=$(cut -d' ' -f1 /proc/loadavg)
out=$("$tmp/bench" cost -addr "127.0.0.1:$port" -events "$N" -inflight "$INFLIGHT" -jobs "$tmp/jobs" -job-runs 10)
log "$out"

kv() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
line() { grep -F "stage=\"$1\"" <<<"$out"; }
echo
echo "redis-keda bench-cost: redis $(redis-cli -p "$port" info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p'), $(nproc) CPUs, load average $load at start; $N events, $INFLIGHT in flight at once"
printf '%-22s %18s %18s %18s %18s\n' "per event" "round trips" "Redis usec" "Redis CPU us" "commands run"
printf '%-22s %18s %18s %18s %18s\n' "" "ours / textbook" "ours / textbook" "ours / textbook" "ours / textbook"
for s in publish claim "heartbeat (each)" ack "KEDA poll (per poll)"; do
	l=$(line "$s")
	printf '%-22s %8s / %-7s %8s / %-7s %8s / %-7s %8s / %-7s\n' "$s" \
		"$(kv "$l" trips_ours)" "$(kv "$l" trips_textbook)" "$(kv "$l" usec_ours)" "$(kv "$l" usec_textbook)" \
		"$(kv "$l" cpu_us_ours)" "$(kv "$l" cpu_us_textbook)" "$(kv "$l" cmds_ours)" "$(kv "$l" cmds_textbook)"
done
# A lifecycle: publish + claim + HB heartbeats + ack.
life() { # field heartbeats
	local p c h a
	p=$(kv "$(line publish)" "$1"_ours) c=$(kv "$(line claim)" "$1"_ours) h=$(kv "$(line "heartbeat (each)")" "$1"_ours) a=$(kv "$(line ack)" "$1"_ours)
	local tp tc ta
	tp=$(kv "$(line publish)" "$1"_textbook) tc=$(kv "$(line claim)" "$1"_textbook) ta=$(kv "$(line ack)" "$1"_textbook)
	awk -v p="$p" -v c="$c" -v h="$h" -v a="$a" -v hb="$2" -v tp="$tp" -v tc="$tc" -v ta="$ta" -v f="$1" 'BEGIN {
		o = p + c + hb * h + a; t = tp + tc + ta
		printf "lifecycle (%d heartbeats) %-8s ours %8.2f  textbook %8.2f  ratio %.2f\n", hb, f, o, t, o / t
	}'
}
echo
for hb in 0 "$HB"; do
	life trips "$hb"
	life usec "$hb"
	life cpu_us "$hb"
done
m=$(grep '^memory ' <<<"$out")
echo
echo "bytes per event (MEMORY USAGE, payload $(kv "$m" payload_bytes) B): pending ours $(kv "$m" pending_ours) / textbook $(kv "$m" pending_textbook);" \
	"in flight ($(kv "$m" inflight) at once) ours $(kv "$m" inflight_ours) / textbook $(kv "$m" inflight_textbook)" \
	"= $(awk -v o="$(kv "$m" inflight_ours)" -v t="$(kv "$m" inflight_textbook)" 'BEGIN { printf "%.2f", o / t }');" \
	"acked ours $(kv "$m" acked_ours) (the finished marker, 2 min) / textbook $(kv "$m" acked_textbook)"
j=$(grep '^jobs ' <<<"$out")
echo "one jobs process (MONITOR, $(kv "$j" runs) runs, wait $(kv "$j" wait), LEASE_DURATION $(kv "$j" lease)): $(kv "$j" trips_per_process) round trips on $(kv "$j" conns_per_process) connection(s): $(kv "$j" sent); inside scripts: $(kv "$j" scripted)"
echo "KEDA: one EVAL per pollingInterval per ScaledJob, whatever the queue: at pollingInterval 2 s, $(awk -v u="$(kv "$(line "KEDA poll (per poll)")" cpu_us_ours)" 'BEGIN { printf "%.1f", u * 30 / 1000 }') ms of Redis CPU per minute"
echo "(reproduce: scripts/bench-cost.sh)"

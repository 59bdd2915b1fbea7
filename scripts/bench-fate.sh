#!/usr/bin/env bash
# Measures `redis-keda publish` and the done records, side by side with a
# baseline on ONE fresh redis-server (started here on a free port, killed on
# exit):
#
#   publish      `redis-keda publish < file` of 1M JSON lines of VALUE bytes,
#                each with its own id (pushed byte for byte), events/s vs
#                `redis-benchmark -t lpush -P 32 -d VALUE` ops/s (50 clients);
#                also lines without an id (each pushed in an envelope with a
#                new id) for information. Alternating rounds: each round's
#                ratio, and their median.
#   ack path     acks/s of queue.Ack alone (claim not counted), done records
#                off (DONE_MAX_RECORDS=0) vs on, alternating rounds
#   done memory  MEMORY USAGE of {q}:done + {q}:done:order after N acks, and
#                the INFO used_memory drop when they are deleted, per event
#
# ratio = ours / baseline (higher is better for rates). Nothing is asserted:
# figures depend on the machine and its load (printed at start).
#
# Usage: scripts/bench-fate.sh   (BENCH_PUBLISH_LINES, BENCH_VALUE,
#        BENCH_ACKS, BENCH_ROUNDS)
set -euo pipefail
shopt -s inherit_errexit

LINES=${BENCH_PUBLISH_LINES:-1000000}
VALUE=${BENCH_VALUE:-100}
ACKS=${BENCH_ACKS:-100000}
ROUNDS=${BENCH_ROUNDS:-3}

cd "$(dirname "$0")/.."
for tool in go redis-server redis-benchmark redis-cli python3; do
	command -v "$tool" >/dev/null || { echo "bench-fate: $tool not found on PATH" >&2; exit 1; }
done

tmp=$(mktemp -d)
redis_pid=
cleanup() {
	[[ -n $redis_pid ]] && { kill -9 "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf 'bench-fate: %s\n' "$*" >&2; }

go build -o "$tmp/redis-keda" ./cmd/redis-keda
go build -o "$tmp/fatebench" ./scripts/fatebench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
	[[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break
	sleep 0.05
done

echo "machine: $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f3)"

"$tmp/fatebench" lines -n "$LINES" -size "$VALUE" >"$tmp/ids.jsonl"
"$tmp/fatebench" lines -n "$LINES" -size "$VALUE" -noid >"$tmp/noids.jsonl"
log "$LINES lines of $VALUE bytes (plus newline): $(wc -c <"$tmp/ids.jsonl") bytes"

rate() { python3 -c "import sys; print(f'{$1/($2):.0f}')"; }
publish_run() { # file -> events/s
	redis-cli -p "$port" del events >/dev/null
	local t0 t1
	t0=$(date +%s.%N)
	REDIS_ADDR=127.0.0.1:$port QUEUE=events "$tmp/redis-keda" publish <"$1" >/dev/null 2>"$tmp/publish.err" ||
		{ cat "$tmp/publish.err" >&2; exit 1; }
	t1=$(date +%s.%N)
	local n
	n=$(redis-cli -p "$port" llen events)
	[[ $n == "$LINES" ]] || { echo "bench-fate: $n events on the list, want $LINES" >&2; exit 1; }
	rate "$LINES" "$t1 - $t0"
}
benchmark_run() { # -> ops/s
	redis-cli -p "$port" del mylist >/dev/null
	redis-benchmark -p "$port" -t lpush -P 32 -n "$LINES" -d "$VALUE" -q 2>/dev/null |
		tr '\r' '\n' | awk '/^LPUSH:/ {print int($2)}' | tail -1
}
ratios=() noid_ratios=()
for r in $(seq "$ROUNDS"); do
	base=$(benchmark_run)
	ours=$(publish_run "$tmp/ids.jsonl")
	noid=$(publish_run "$tmp/noids.jsonl")
	ratio=$(python3 -c "print(f'{$ours/$base:.2f}')")
	ratios+=("$ratio") noid_ratios+=("$(python3 -c "print(f'{$noid/$base:.2f}')")")
	echo "publish round $r: redis-keda publish ${ours}/s (own ids), ${noid}/s (no ids: envelopes); redis-benchmark LPUSH -P 32 ${base}/s; ratio $ratio"
done
redis-cli -p "$port" flushall >/dev/null
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "publish: ratio to redis-benchmark (median of $ROUNDS rounds): $(median "${ratios[@]}") (rounds: ${ratios[*]}); id-less lines: $(median "${noid_ratios[@]}")"

"$tmp/fatebench" acks -addr "127.0.0.1:$port" -n "$ACKS" -rounds "$ROUNDS" | tee "$tmp/acks.out"
python3 - "$tmp/acks.out" <<'EOF'
import re, sys
best = {}
for line in open(sys.argv[1]):
    m = re.search(r'done_records=(on|off) .*acks_per_s=(\d+)', line)
    if m:
        best[m[1]] = max(best.get(m[1], 0), int(m[2]))
print(f"ack path: best {best['on']} acks/s with done records vs {best['off']} without: ratio {best['on']/best['off']:.2f}")
EOF

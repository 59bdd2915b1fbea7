#!/usr/bin/env bash
# Measures the queue's data path next to redis-benchmark, side by side on ONE
# fresh redis-server (started here on a free port, killed on exit):
#
#   publish      queue.Publish (one multi-value LPUSH per batch) events/s
#                vs redis-benchmark LPUSH ops/s (same value size)
#   claim+ack    queue.Claim (BRPOPLPUSH + lease script) + queue.Ack (script)
#                cycles/s vs redis-benchmark RPOPLPUSH ops/s (a rotating list)
#   jobs         the jobs binary, one {"wait":0} event: exec -> claim -> ack
#                -> exit wall time and peak RSS, vs a redis-cli process that
#                connects, moves one event (RPOPLPUSH) and exits
#   oversize     the jobs binary given a 16 MiB event (above MAX_PAYLOAD_BYTES,
#                dead-lettered by a script): peak RSS vs redis-cli moving it
#   mover        100k scheduled events due at once to pending (one MoveDue), and
#                the mover loop's latency from due time to pending
#   reaper       queue.Reap of 100k expired leases, and of 100k entries claimed
#                but never leased: wall time vs redis-benchmark RPUSH -P 100 of
#                as many entries; the longest script (SLOWLOG); the worst PING
#                latency from another connection during the reap vs idle
#   operator     Redis's peak RSS growth during peek dead (8 x 12 MiB dead
#   reads        letters), inspect and redrive of one of them, peek pending
#                -n 150 and inspect (150 x 1 MB events) vs one LINDEX of the
#                same entry by redis' own client (bound: 2 x the entry + 8 MiB)
#   scale-out    aggregate claim+ack cycles/s of 3 queues (3 hash tags, one
#                per master) on a 3-master Redis Cluster started here, vs the
#                same 3 queues on the one server above
#
# ratio = ours / baseline. For rates higher is better; for ms and RSS lower
# is better. Figures depend on the machine and on its load: the header says
# which machine and the load average at start. Nothing is asserted: the
# script fails only when a measurement cannot be made.
#
# Usage: scripts/bench.sh    (tunables below, as environment variables)
set -euo pipefail
shopt -s inherit_errexit # a failing helper inside $(...) stops the script

SECONDS_EACH=${BENCH_SECONDS:-3}  # how long each of our measurements runs
RUNS=${BENCH_RUNS:-20}            # jobs / redis-cli processes timed
N_SINGLE=${BENCH_N_SINGLE:-50000} # redis-benchmark requests, unpipelined runs
N_PIPE=${BENCH_N_PIPE:-500000}    # redis-benchmark requests, -P 32 run
PREFILL=${BENCH_PREFILL:-100000}  # events queued before a claim+ack run
ORPHANS=${BENCH_ORPHANS:-100000}  # orphans per reaper measurement
BIG=${BENCH_BIG:-16777216}        # bytes of the oversize event
SO_CONSUMERS=${BENCH_SCALEOUT_CONSUMERS:-4} # consumers per queue, scale-out

cd "$(dirname "$0")/.."

for tool in go redis-server redis-benchmark redis-cli; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench: $tool not found on PATH (Debian: apt-get install -y redis-server redis-tools; Go from go.dev/dl)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
redis_pid=
cluster_pids=()
cleanup() {
	for pid in $redis_pid "${cluster_pids[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf 'bench: %s\n' "$*" >&2; }

log "building jobs and the bench helper into $tmp"
go build -o "$tmp/jobs" ./jobs
go build -o "$tmp/bench" ./scripts/bench
bench="$tmp/bench"

port=$("$bench" free-port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no \
	--daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
	if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then break; fi
	if ! kill -0 "$redis_pid" 2>/dev/null; then
		echo "bench: redis-server exited at start; its log:" >&2
		cat "$tmp/redis.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ $(redis-cli -p "$port" ping 2>/dev/null) != PONG ]]; then
	echo "bench: redis-server on port $port not ready after 10s" >&2
	exit 1
fi
addr=127.0.0.1:$port
rcli() { redis-cli -p "$port" "$@"; }

# kv LINE KEY: the value of KEY=value in LINE.
kv() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
# rb ARGS...: redis-benchmark's requests/s (its --csv output, first result).
rb() {
	local out rps
	out=$(redis-benchmark -p "$port" --csv "$@") || return 1
	rps=$(awk -F'","' 'NR == 2 { print $2 }' <<<"$out")
	if [[ -z $rps ]]; then
		echo "bench: no result from redis-benchmark $*: $out" >&2
		return 1
	fi
	log "redis-benchmark $*: $rps/s"
	echo "$rps"
}
ours() { # subcommand flags...: our helper's result line
	local out
	out=$("$bench" "$1" -addr "$addr" "${@:2}") || return 1
	log "$1: $out"
	echo "$out"
}

redis_version=$(rcli info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
load=$(cut -d' ' -f1 /proc/loadavg)
size=$(kv "$("$bench" payload-size)" payload_bytes)
dur=${SECONDS_EACH}s

# --- publish -----------------------------------------------------------------
b_lp1=$(rb -t lpush -P 1 -c 1 -n "$N_SINGLE" -d "$size")
rcli flushall >/dev/null
o_p1=$(ours publish -batch 1 -conns 1 -duration "$dur")
b_lp32=$(rb -t lpush -P 32 -c 50 -n "$N_PIPE" -d "$size")
rcli flushall >/dev/null
o_p10=$(ours publish -batch 10 -conns 50 -duration "$dur")
o_p100=$(ours publish -batch 100 -conns 50 -duration "$dur")

# --- claim + ack -------------------------------------------------------------
# A list of 1000 event-sized values that RPOPLPUSH rotates onto itself.
rb -t lpush -c 1 -n 1000 -d "$size" >/dev/null
b_rpl1=$(rb -c 1 -n "$N_SINGLE" rpoplpush mylist mylist)
o_c1=$(ours claimack -consumers 1 -duration "$dur" -prefill "$PREFILL")
b_rpl8=$(rb -c 8 -n "$N_SINGLE" rpoplpush mylist mylist)
o_c8=$(ours claimack -consumers 8 -duration "$dur" -prefill "$PREFILL")
rcli flushall >/dev/null

# --- one jobs process ----------------------------------------------------------
o_jobs=$(CLAIM_TIMEOUT=2s LOG_LEVEL=info ours exec -runs "$RUNS" -acked -- "$tmp/jobs")
b_cli=$(ours exec -runs "$RUNS" -- redis-cli -p "$port" rpoplpush bench '{bench}:processing')

# --- one jobs process, oversize event ------------------------------------------
o_big=$(CLAIM_TIMEOUT=2s ours exec -runs 3 -rss-runs 3 -dead -payload-bytes "$BIG" -- "$tmp/jobs")
b_big=$(ours exec -runs 3 -rss-runs 3 -payload-bytes "$BIG" -- redis-cli -p "$port" rpoplpush bench '{bench}:processing')
rcli flushall >/dev/null

# --- reaper at scale -------------------------------------------------------------
o_rexp=$(ours reap -n "$ORPHANS" -kind expired)
o_runl=$(ours reap -n "$ORPHANS" -kind unleased)
b_rpush=$(rb -t rpush -P 100 -c 1 -n "$ORPHANS" -d "$size")
rcli flushall >/dev/null

# --- the mover: $ORPHANS due at once, and its latency from due to pending -------
o_move=$(ours move -n "$ORPHANS" -latency-events 20 -interval 500ms)
rcli flushall >/dev/null

# --- operator reads: Redis's peak memory ----------------------------------------
o_ops=$(ours opsmem -pid "$redis_pid")
rcli flushall >/dev/null

# --- scale-out: 3 queues on a 3-master cluster vs on the one server -----------
# Three cluster-enabled servers (no replicas: on a small machine they would
# take CPU from the masters), joined by redis-cli --cluster create.
cluster_addrs=()
for i in 1 2 3; do
	p=$("$bench" free-port)
	bus=$("$bench" free-port)
	mkdir -p "$tmp/node$i"
	redis-server --port "$p" --bind 127.0.0.1 --dir "$tmp/node$i" --save '' --appendonly no --daemonize no \
		--logfile "$tmp/node$i/redis.log" --cluster-enabled yes --cluster-config-file "$tmp/node$i/nodes.conf" \
		--cluster-port "$bus" &
	cluster_pids+=($!)
	cluster_addrs+=("127.0.0.1:$p")
done
for a in "${cluster_addrs[@]}"; do
	for _ in $(seq 100); do
		if [[ $(redis-cli -p "${a##*:}" ping 2>/dev/null) == PONG ]]; then break; fi
		sleep 0.1
	done
done
redis-cli --cluster create "${cluster_addrs[@]}" --cluster-replicas 0 --cluster-yes >"$tmp/cluster-create.log" 2>&1 || {
	echo "bench: redis-cli --cluster create failed:" >&2
	cat "$tmp/cluster-create.log" >&2
	exit 1
}
for a in "${cluster_addrs[@]}"; do
	for _ in $(seq 100); do
		if redis-cli -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then break; fi
		sleep 0.1
	done
done
log "3-master cluster on ${cluster_addrs[*]}"
o_so_c=$("$bench" scaleout -mode cluster -addr "$(IFS=,; echo "${cluster_addrs[*]}")" -queues 3 -consumers "$SO_CONSUMERS" -duration "$dur")
log "scaleout cluster: $o_so_c"
o_so_s=$("$bench" scaleout -mode standalone -addr "$addr" -names "$(kv "$o_so_c" queues)" -consumers "$SO_CONSUMERS" -duration "$dur")
log "scaleout standalone: $o_so_s"

# --- report ------------------------------------------------------------------
row() { # label ours baseline baseline-description
	awk -v l="$1" -v o="$2" -v b="$3" -v d="$4" 'BEGIN {
		printf "%-40s %12.0f %12.0f %7.2f  %s\n", l, o, b, (b > 0 ? o / b : 0), d
	}'
}
rowf() { # same with two decimals (ms)
	awk -v l="$1" -v o="$2" -v b="$3" -v d="$4" 'BEGIN {
		printf "%-40s %12.2f %12.2f %7.2f  %s\n", l, o, b, (b > 0 ? o / b : 0), d
	}'
}
echo
echo "redis-keda bench: redis $redis_version, $(nproc) CPUs ($cpu), load average $load at start, $(go env GOVERSION), event payload $size B"
printf '%-40s %12s %12s %7s  %s\n' "measurement" "ours" "baseline" "ratio" "baseline"
row "publish batch=1, 1 conn (events/s)" "$(kv "$o_p1" per_sec)" "$b_lp1" "redis-benchmark LPUSH -P 1 -c 1"
row "publish batch=10, 50 conns (events/s)" "$(kv "$o_p10" per_sec)" "$b_lp32" "redis-benchmark LPUSH -P 32 -c 50"
row "publish batch=100, 50 conns (events/s)" "$(kv "$o_p100" per_sec)" "$b_lp32" "redis-benchmark LPUSH -P 32 -c 50"
row "claim+ack, 1 consumer (cycles/s)" "$(kv "$o_c1" per_sec)" "$b_rpl1" "redis-benchmark RPOPLPUSH -c 1"
row "claim+ack, 8 consumers (cycles/s)" "$(kv "$o_c8" per_sec)" "$b_rpl8" "redis-benchmark RPOPLPUSH -c 8"
rowf "jobs exec->claim->ack->exit, median ms" "$(kv "$o_jobs" median_ms)" "$(kv "$b_cli" median_ms)" "redis-cli RPOPLPUSH process"
rowf "jobs exec->claim->ack->exit, p90 ms" "$(kv "$o_jobs" p90_ms)" "$(kv "$b_cli" p90_ms)" "redis-cli RPOPLPUSH process"
rowf "jobs peak RSS (MiB)" "$(awk -v k="$(kv "$o_jobs" peak_rss_kib)" 'BEGIN { print k / 1024 }')" \
	"$(awk -v k="$(kv "$b_cli" peak_rss_kib)" 'BEGIN { print k / 1024 }')" "redis-cli RPOPLPUSH process"
mib() { awk -v k="$1" 'BEGIN { print k / 1024 }'; }
rowf "jobs peak RSS, $((BIG >> 20)) MiB oversize event (MiB)" "$(mib "$(kv "$o_big" peak_rss_kib)")" "$(mib "$(kv "$b_big" peak_rss_kib)")" "redis-cli RPOPLPUSH of it"
row "reap $ORPHANS expired leases (entries/s)" "$(kv "$o_rexp" per_sec)" "$b_rpush" "redis-benchmark RPUSH -P 100 -c 1"
row "reap $ORPHANS never-leased (entries/s)" "$(kv "$o_runl" per_sec)" "$b_rpush" "redis-benchmark RPUSH -P 100 -c 1"
rowf "worst PING during reap, expired (ms)" "$(kv "$o_rexp" worst_ping_ms)" "$(kv "$o_rexp" idle_worst_ping_ms)" "worst PING, idle, as long"
rowf "worst PING during reap, never-leased (ms)" "$(kv "$o_runl" worst_ping_ms)" "$(kv "$o_runl" idle_worst_ping_ms)" "worst PING, idle, as long"
row "move $ORPHANS due at once (entries/s)" "$(kv "$o_move" per_sec)" "$b_rpush" "redis-benchmark RPUSH -P 100 -c 1"
rowf "worst PING during the move (ms)" "$(kv "$o_move" worst_ping_ms)" "$(kv "$o_rexp" idle_worst_ping_ms)" "worst PING, idle (reaper run)"
rowf "mover latency due->pending, median ms" "$(kv "$o_move" latency_median_ms)" "$(kv "$o_move" interval_ms)" "MOVE_INTERVAL (its bound)"
rowf "mover latency due->pending, max ms" "$(kv "$o_move" latency_max_ms)" "$(kv "$o_move" interval_ms)" "MOVE_INTERVAL (its bound)"
rowf "peek dead 8 x 12 MiB: Redis peak RSS +MiB" "$(kv "$o_ops" peek_dead_rss_mib)" "$(kv "$o_ops" baseline_lindex_rss_mib)" "one LINDEX of a 12 MiB entry"
rowf "inspect a 12 MiB dead letter: +MiB" "$(kv "$o_ops" inspect_dead_rss_mib)" "$(kv "$o_ops" baseline_lindex_rss_mib)" "one LINDEX of a 12 MiB entry"
rowf "redrive a 12 MiB dead letter: +MiB" "$(kv "$o_ops" redrive_dead_rss_mib)" "$(kv "$o_ops" baseline_lindex_rss_mib)" "one LINDEX of a 12 MiB entry"
rowf "peek pending -n 150, 150 x 1 MB: +MiB" "$(kv "$o_ops" peek_pending_150_rss_mib)" "$(kv "$o_ops" baseline_lindex_1mb_rss_mib)" "one LINDEX of a 1 MB entry"
rowf "inspect among 150 x 1 MB: +MiB" "$(kv "$o_ops" inspect_pending_rss_mib)" "$(kv "$o_ops" baseline_lindex_1mb_rss_mib)" "one LINDEX of a 1 MB entry"
row "claim+ack, 3 queues on 3 masters (cycles/s)" "$(kv "$o_so_c" per_sec)" "$(kv "$o_so_s" per_sec)" "the same 3 queues on one server"
row "  per CPU-second of the busiest server" "$(kv "$o_so_c" per_busiest_cpu_s)" "$(kv "$o_so_s" per_busiest_cpu_s)" "the same 3 queues on one server"
echo
echo "oversize event: peak RSS $(mib "$(kv "$o_big" peak_rss_kib)") MiB for a $((BIG >> 20)) MiB payload = $(awk -v k="$(kv "$o_big" peak_rss_kib)" -v b="$BIG" 'BEGIN { printf "%.2f", k * 1024 / b }') x payload (bound: 2 x payload + a small constant)"
echo "reaper: $ORPHANS expired leases back in pending in $(kv "$o_rexp" wall_ms) ms ($(kv "$o_rexp" batches) scripts, longest $(kv "$o_rexp" max_script_ms) ms);" \
	"$ORPHANS never-leased in $(kv "$o_runl" wall_ms) ms ($(kv "$o_runl" batches) scripts, longest $(kv "$o_runl" max_script_ms) ms)"
echo "mover: $ORPHANS events due at once all pending in $(kv "$o_move" wall_ms) ms; due->pending latency median $(kv "$o_move" latency_median_ms) ms, p90 $(kv "$o_move" latency_p90_ms) ms, max $(kv "$o_move" latency_max_ms) ms (MOVE_INTERVAL $(kv "$o_move" interval_ms) ms; 20 events)"
echo "scale-out: queues $(kv "$o_so_c" queues) on masters $(kv "$o_so_c" masters), $SO_CONSUMERS consumers each:" \
	"$(kv "$o_so_c" per_sec) cycles/s on the cluster vs $(kv "$o_so_s" per_sec) on one server = $(awk -v c="$(kv "$o_so_c" per_sec)" -v s="$(kv "$o_so_s" per_sec)" 'BEGIN { printf "%.2f", c / s }') x here ($(nproc) CPUs shared by the 3 masters and the client);" \
	"the busiest server spent $(kv "$o_so_c" busiest_server_cpu_s) of $(kv "$o_so_c" servers_cpu_s) server CPU-seconds on the cluster vs $(kv "$o_so_s" busiest_server_cpu_s) alone:" \
	"with a core per master the servers' capacity is $(awk -v c="$(kv "$o_so_c" per_busiest_cpu_s)" -v s="$(kv "$o_so_s" per_busiest_cpu_s)" 'BEGIN { printf "%.2f", c / s }') x one server's"
echo "operator reads: Redis's peak RSS grew by at most $(awk -v a="$(kv "$o_ops" peek_dead_rss_mib)" -v b="$(kv "$o_ops" inspect_dead_rss_mib)" -v c="$(kv "$o_ops" redrive_dead_rss_mib)" -v l="$(kv "$o_ops" dead_largest_mib)" 'BEGIN { m = a; if (b > m) m = b; if (c > m) m = c; printf "%.1f MiB = %.2f", m, m / l }') x the largest (12 MiB) entry (bound: 2 x the entry + 8 MiB; the old page scripts took +192 MiB for peek dead)"
echo "(ratio = ours/baseline; ${SECONDS_EACH}s per measurement of ours, $RUNS process runs; reproduce: scripts/bench.sh)"

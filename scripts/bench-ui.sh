#!/usr/bin/env bash
# The dashboard at scale: a fresh redis-server (started by the benchmark,
# internal/redistest) seeded with 1,000,000 pending, 100,000 dead, 100,000
# scheduled and 1,000 in-flight events; each page served by the real handler 20 times. Prints,
# per page, the server time (ms/page), the Redis time (redis-µs/page: INFO
# commandstats usec summed, reset before each page, INFO itself left out)
# and the page's bytes. "refresh" is the overview's 5 s auto-refresh. The
# budget is 100 ms per page; nothing is asserted (load moves the numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== dashboard pages ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
go test -count=1 -run '^$' -bench BenchmarkDashboard -benchtime "${UI_BENCH_TIMES:-20}x" ./internal/ui |
  grep -E '^Benchmark' | sed -E 's/^BenchmarkDashboard\///; s/-[0-9]+ +/ /' |
  awk '{printf "  %-24s %8s ms/page  %10s redis-us/page  %7s bytes\n", $1, $7, $9, $5}'

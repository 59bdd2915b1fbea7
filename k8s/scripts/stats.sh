#!/usr/bin/env bash
# stats.sh: the ScaledJob's Jobs and the queue (`redis-keda stats`: lengths,
# ages, leases, outcome totals) for the deployed OVERLAY.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
echo "== namespace $NS"
kubectl -n "$NS" get scaledjob redis-keda-jobs -o wide || true
echo "== jobs"
kubectl -n "$NS" get jobs -l app.kubernetes.io/component=jobs --no-headers 2>/dev/null |
  awk '{c[$2]++} END {n=0; for (k in c) {printf "  completions %s: %d\n", k, c[k]; n+=c[k]}; printf "  total: %d\n", n}'
echo "== queue (redis-keda stats, in the publisher pod)"
NS="$NS" "$(dirname "${BASH_SOURCE[0]}")/cli.sh" stats

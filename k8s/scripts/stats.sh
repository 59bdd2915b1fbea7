#!/usr/bin/env bash
# stats.sh: the queue (pending, in flight, claims, dead, counters) and the ScaledJob's
# Jobs for the deployed OVERLAY.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
echo "== namespace $NS"
kubectl -n "$NS" get scaledjob redis-keda-jobs -o wide || true
echo "== jobs"
kubectl -n "$NS" get jobs -l app.kubernetes.io/component=jobs --no-headers 2>/dev/null |
  awk '{c[$2]++} END {n=0; for (k in c) {printf "  completions %s: %d\n", k, c[k]; n+=c[k]}; printf "  total: %d\n", n}'
echo "== queue"
redis_sh 'q=$QUEUE; case $q in *"{"*"}"*) t=$q;; *) t="{$q}";; esac;
echo "  pending    ($q): $(cli LLEN "$q")";
echo "  in flight  ($t:claimed): $(cli ZCARD "$t:claimed")";
echo "  claims     ($t:leases): $(cli ZCARD "$t:leases")";
echo "  dead       ($t:dead): $(cli LLEN "$t:dead")";
echo "  counters   ($t:counters): $(cli HGETALL "$t:counters" | paste -sd " " -)"'

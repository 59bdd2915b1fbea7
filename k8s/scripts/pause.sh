#!/usr/bin/env bash
# pause.sh pause|resume: stop or restart KEDA's scaling of the ScaledJob of
# OVERLAY (default dev) with KEDA's autoscaling.keda.sh/paused annotation
# (KEDA 2.13+). Paused, KEDA creates no new Jobs; running Jobs finish, new
# events wait in the pending list, and the publisher's reaper keeps running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
SJ=redis-keda-jobs
case "${1:-}" in
  pause)
    kubectl -n "$NS" annotate scaledjob "$SJ" autoscaling.keda.sh/paused=true --overwrite
    echo "paused: KEDA creates no Jobs for $NS/$SJ; events wait in the queue; 'task resume' restarts it"
    ;;
  resume)
    kubectl -n "$NS" annotate scaledjob "$SJ" autoscaling.keda.sh/paused-
    echo "resumed: KEDA creates Jobs for $NS/$SJ again from its next poll"
    ;;
  *)
    echo "usage: pause.sh pause|resume" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# watch.sh: follow the Jobs KEDA creates in the namespace of OVERLAY
# (kubectl get jobs -n <namespace> -w, only the ScaledJob's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
exec kubectl get jobs -n "$NS" -l app.kubernetes.io/component=jobs -w

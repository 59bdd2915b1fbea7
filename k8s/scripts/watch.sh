#!/usr/bin/env bash
# watch.sh: follow the Jobs KEDA creates in the namespace of OVERLAY.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVERLAY=${OVERLAY:-dev}
NS=${NS:-$(kubectl kustomize "$root/k8s/overlays/$OVERLAY" | awk '/^kind: Namespace$/{ns=1} ns && /^  name:/{print $2; exit}')}
exec kubectl -n "${NS:-redis-demo}" get jobs -l app.kubernetes.io/component=jobs -w

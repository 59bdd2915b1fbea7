#!/usr/bin/env bash
# undeploy.sh: delete what `deploy` applied (OVERLAY, default dev). The
# namespace goes too, and with it the in-cluster Redis's PVC.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVERLAY=${OVERLAY:-dev}
kubectl delete -k "$root/k8s/overlays/$OVERLAY" --ignore-not-found --wait=false

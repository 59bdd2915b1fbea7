#!/usr/bin/env bash
# deploy.sh: kubectl apply -k an overlay with the image set to IMAGE:TAG.
# Env: OVERLAY (dev | prod | any dir under k8s/overlays), IMAGE, TAG (both
# optional: without them the overlay's own image is used), DRY_RUN=1 to print
# the rendered manifests instead of applying them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVERLAY=${OVERLAY:-dev}
dir=$root/k8s/overlays/$OVERLAY
[[ -f $dir/kustomization.yaml ]] || { echo "deploy: no overlay $dir" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "deploy: kubectl not found" >&2; exit 1; }
# A throw-away kustomization on top of the overlay sets the image, so no
# tracked file is edited. Kustomize wants relative paths.
tmp=$(mktemp -d "$root/k8s/.deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [../overlays/$OVERLAY]"
  if [[ -n ${TAG:-} || -n ${IMAGE:-} ]]; then
    img=${IMAGE:-redis-keda}
    echo "images:"
    # The name as the overlay leaves it (dev: redis-keda, prod: a registry
    # name): match both.
    for name in redis-keda ghcr.io/redis-keda/redis-keda; do
      echo "  - name: $name"
      echo "    newName: $img"
      [[ -n ${TAG:-} ]] && echo "    newTag: \"$TAG\""
    done
  fi
} >"$tmp/kustomization.yaml"
if [[ ${DRY_RUN:-} == 1 ]]; then
  kubectl kustomize "$tmp"
  exit 0
fi
if ! kubectl get crd scaledjobs.keda.sh >/dev/null 2>&1; then
  echo "deploy: KEDA is not installed in this cluster (no CRD scaledjobs.keda.sh); see k8s/README.md" >&2
  exit 1
fi
echo "+ kubectl apply -k k8s/overlays/$OVERLAY ${TAG:+(image ${IMAGE:-redis-keda}:$TAG)}"
kubectl apply -k "$tmp"

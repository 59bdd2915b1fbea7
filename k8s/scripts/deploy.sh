#!/usr/bin/env bash
# deploy.sh: kubectl apply -k an overlay, with its image set to:
#   - IMAGE and/or TAG when given (TAG alone keeps the overlay's registry and
#     repository, e.g. prod's ghcr.io/redis-keda/redis-keda);
#   - else, for every overlay but prod, the image `task image` built last
#     (.task/last-image), so a rebuild gets a new tag and rolls the publisher;
#   - else the overlay's own image (prod: its pinned release).
# Env: OVERLAY (dev | prod | any dir under k8s/overlays), IMAGE, TAG,
# DRY_RUN=1 to print the rendered manifests instead of applying them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir=$root/k8s/overlays/$OVERLAY
[[ -f $dir/kustomization.yaml ]] || die "no overlay $dir (OVERLAY=dev, prod or a directory under k8s/overlays)"
command -v kubectl >/dev/null 2>&1 || die "kubectl not found"

img=${IMAGE:-} tag=${TAG:-}
if [[ -z $img && -z $tag && $OVERLAY != prod && -s $last_image_file ]]; then
  last=$(<"$last_image_file")
  img=${last%:*} tag=${last##*:}
  echo "deploy: using the image task image built last: $last" >&2
elif [[ -z $img && -z $tag && $OVERLAY != prod ]]; then
  echo "deploy: no image built by 'task image' yet (.task/last-image): using the overlay's own image" >&2
fi

# A throw-away kustomization on top of the overlay sets the image, so no
# tracked file is edited. Kustomize wants relative paths.
tmp=$(mktemp -d "$root/k8s/.deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [../overlays/$OVERLAY]"
  if [[ -n $img || -n $tag ]]; then
    echo "images:"
    # The name as the overlay leaves it (dev: redis-keda, prod: its registry
    # name): match both.
    for name in redis-keda ghcr.io/redis-keda/redis-keda; do
      echo "  - name: $name"
      [[ -n $img ]] && echo "    newName: \"$img\""
      [[ -n $tag ]] && echo "    newTag: \"$tag\""
    done
  fi
} >"$tmp/kustomization.yaml"
if [[ ${DRY_RUN:-} == 1 ]]; then
  kubectl kustomize "$tmp"
  exit 0
fi
if ! kubectl get crd scaledjobs.keda.sh >/dev/null 2>&1; then
  die "KEDA is not installed in the cluster of context $(kubectl config current-context 2>/dev/null || echo '?') (no CRD scaledjobs.keda.sh). Install it first:
  kubectl apply --server-side -f https://github.com/kedacore/keda/releases/download/v2.21.0/keda-2.21.0.yaml
  kubectl -n keda rollout status deploy/keda-operator
(see k8s/README.md)"
fi
echo "+ kubectl apply -k k8s/overlays/$OVERLAY${img:+ image $img}${tag:+ tag $tag}"
kubectl apply -k "$tmp"

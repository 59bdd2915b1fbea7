#!/usr/bin/env bash
# image.sh: build the redis-keda image with Docker BuildKit (buildx), then
# make it available where it will run:
#   - current kubectl context is a kind cluster: kind load docker-image
#   - current kubectl context is a minikube profile: minikube image load
#   - PUSH=1 (task push): push to IMAGE's registry (REGISTRY=...)
#   - anything else: say how to get it there.
# It records the image in .task/last-image, which `task deploy` uses.
#
# Env: IMAGE (default redis-keda, or $REGISTRY/redis-keda), REGISTRY, TAG
# (default: git describe, see common.sh), VERSION (stamped into the binary,
# default: the tag), PUSH=1, PLATFORMS (with PUSH, e.g.
# linux/amd64,linux/arm64), DRY_RUN=1 (print the commands only).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$root"

IMAGE=${IMAGE:-${REGISTRY:+${REGISTRY%/}/}redis-keda}
TAG=${TAG:-$(image_tag)}
VERSION=${VERSION:-$TAG}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ref=$IMAGE:$TAG

if [[ ${PUSH:-} == 1 && $IMAGE != */* ]]; then
  die "push: IMAGE=$IMAGE has no registry; run: task push REGISTRY=<registry>/<namespace> (e.g. REGISTRY=ghcr.io/you)"
fi

# The Dockerfile needs BuildKit (RUN --mount caches, --platform=$BUILDPLATFORM):
# build with buildx, never the legacy builder.
cmd=(docker buildx build
  --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$REVISION"
  --build-arg "CREATED=$CREATED"
  -t "$ref")
if [[ ${PUSH:-} == 1 ]]; then
  [[ -n ${PLATFORMS:-} ]] && cmd+=(--platform "$PLATFORMS")
  cmd+=(--push)
else
  cmd+=(--load)
fi
cmd+=(.)
echo "+ ${cmd[*]}"
if [[ ${DRY_RUN:-} == 1 ]]; then exit 0; fi

command -v docker >/dev/null 2>&1 ||
  die "docker CLI not found: install Docker (Engine 23+ or Desktop, which include buildx)"
docker buildx version >/dev/null 2>&1 ||
  die "docker buildx is missing: this Dockerfile needs BuildKit (RUN --mount, --platform=\$BUILDPLATFORM), which the legacy 'docker build' does not run. Install the buildx plugin (Debian/Ubuntu: apt-get install docker-buildx-plugin from Docker's repository, or docker-buildx; see https://docs.docker.com/go/buildx/) and retry"
docker info >/dev/null 2>&1 ||
  die "no Docker engine reachable (docker info failed): start one, or set DOCKER_HOST, and retry"

"${cmd[@]}"
mkdir -p "$(dirname "$last_image_file")"
echo "$ref" >"$last_image_file"

if [[ ${PUSH:-} == 1 ]]; then
  echo "pushed $ref; deploy it with: task deploy OVERLAY=<overlay> IMAGE=$IMAGE TAG=$TAG"
  exit 0
fi
size=$(docker image inspect -f '{{.Size}}' "$ref")
echo "built $ref ($((size / 1024 / 1024)) MiB, target <= 15 MiB)"

context=
command -v kubectl >/dev/null 2>&1 && context=$(kubectl config current-context 2>/dev/null || true)
case $context in
kind-*)
  name=${context#kind-}
  command -v kind >/dev/null 2>&1 || die "context $context looks like kind, but the kind CLI is not installed: kind load docker-image $ref --name $name"
  if kind get clusters 2>/dev/null | grep -qxF "$name"; then
    echo "+ kind load docker-image $ref --name $name"
    kind load docker-image "$ref" --name "$name"
    echo "loaded $ref into kind cluster $name; next: task deploy"
    exit 0
  fi
  ;;
esac
if [[ -n $context ]] && command -v minikube >/dev/null 2>&1 && minikube -p "$context" status >/dev/null 2>&1; then
  echo "+ minikube -p $context image load $ref"
  minikube -p "$context" image load "$ref"
  echo "loaded $ref into minikube profile $context; next: task deploy"
  exit 0
fi
echo "the current kubectl context (${context:-none}) is not a kind or minikube cluster: its nodes cannot see this local image."
echo "push it to a registry they pull from: task push REGISTRY=<registry>/<namespace>"

#!/usr/bin/env bash
# image.sh: build and tag the redis-keda image (both binaries) with docker.
# Env: IMAGE (redis-keda), TAG (dev), VERSION (git describe), DRY_RUN=1 to only print.
# Without a reachable Docker engine it prints the command and fails clearly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
IMAGE=${IMAGE:-redis-keda}
TAG=${TAG:-dev}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cmd=(docker build
  --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$REVISION"
  --build-arg "CREATED=$CREATED"
  -t "$IMAGE:$TAG" .)
echo "+ ${cmd[*]}"
if [[ ${DRY_RUN:-} == 1 ]]; then exit 0; fi
if ! command -v docker >/dev/null 2>&1; then
  echo "image: docker CLI not found; install Docker (or run the command above with podman/buildah)" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "image: no Docker engine reachable (docker info failed); start one, or set DOCKER_HOST, and retry" >&2
  exit 1
fi
"${cmd[@]}"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE:$TAG")
echo "built $IMAGE:$TAG ($((size / 1024 / 1024)) MiB, target <= 15 MiB)"
echo "kind:     kind load docker-image $IMAGE:$TAG"
echo "minikube: minikube image load $IMAGE:$TAG"

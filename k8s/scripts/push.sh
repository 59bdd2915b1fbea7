#!/usr/bin/env bash
# push.sh: build the image and push it to REGISTRY (task push REGISTRY=...).
set -euo pipefail
[[ -n ${REGISTRY:-} || ${IMAGE:-} == */* ]] ||
  { echo "push: set REGISTRY=<registry>/<namespace>, e.g. task push REGISTRY=ghcr.io/you" >&2; exit 1; }
PUSH=1 exec "$(dirname "${BASH_SOURCE[0]}")/image.sh"

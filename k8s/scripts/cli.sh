#!/usr/bin/env bash
# cli.sh COMMAND [ARGS...]: run the operator command `redis-keda COMMAND
# ARGS...` (stats, peek, inspect, redrive, purge; see `redis-keda --help`)
# inside the deployed publisher's container of OVERLAY (default dev). That
# container has the binary, the configuration (ConfigMap, Secret, CA file)
# and a route to Redis, so this works for in-cluster and external Redis,
# TLS and ACL users alike. The command's exit code is this script's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
if [ $# -eq 0 ]; then
  echo "usage: cli.sh stats|peek|inspect|redrive|purge [args...]   (e.g. task redrive -- --all --dry-run)" >&2
  exit 2
fi
exec kubectl -n "$NS" exec deploy/redis-keda-publisher -c publisher -- /redis-keda "$@"

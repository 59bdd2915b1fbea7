#!/usr/bin/env bash
# ui.sh: open the dashboard of the deployed OVERLAY (default dev). The
# publisher serves it on 127.0.0.1:8081 inside its pod (UI_ADDR, loopback
# only), so nothing but `kubectl port-forward` reaches it: the cluster's RBAC
# (pods/portforward) is the gate. This forwards 127.0.0.1:PORT (default
# 8081) to it, prints the URL, and runs until Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
PORT=${PORT:-8081}
case "$PORT" in
  ''|*[!0-9]*) die "PORT=$PORT is not a port number" ;;
esac
echo "dashboard: http://127.0.0.1:$PORT/  (namespace $NS, Ctrl-C to stop)"
exec kubectl -n "$NS" port-forward --address 127.0.0.1 deploy/redis-keda-publisher "$PORT:ui"

#!/usr/bin/env bash
# load.sh: push N events {"wait": W} (W random in WAIT_MIN..WAIT_MAX seconds)
# onto the pending list of the deployed OVERLAY.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NS=${NS:-$(overlay_namespace)}
N=${N:-10}
WAIT_MIN=${WAIT_MIN:-5}
WAIT_MAX=${WAIT_MAX:-15}
echo "pushing $N events (wait ${WAIT_MIN}-${WAIT_MAX}s) in namespace $NS"
# Inside the pod: one LPUSH per event, then report the list length.
redis_sh "i=0; while [ \$i -lt $N ]; do w=\$(( $WAIT_MIN + \$(od -An -N2 -tu2 /dev/urandom) % ($WAIT_MAX - $WAIT_MIN + 1) )); cli LPUSH \"\$QUEUE\" \"{\\\"wait\\\":\$w}\" >/dev/null || exit 1; i=\$((i+1)); done; echo \"pending: \$(cli LLEN \"\$QUEUE\")\""

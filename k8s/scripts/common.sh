# Sourced by load.sh and stats.sh: namespace of OVERLAY and a helper that runs
# redis-cli in a short-lived pod with the app's ConfigMap and Secret, so it
# works for in-cluster and external Redis alike (and is admitted by the
# network-policy component: it carries the publisher's labels).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVERLAY=${OVERLAY:-dev}
NS=${NS:-$(kubectl kustomize "$root/k8s/overlays/$OVERLAY" | awk '/^kind: Namespace$/{ns=1} ns && /^  name:/{print $2; exit}')}
NS=${NS:-redis-demo}
REDIS_CLI_IMAGE=${REDIS_CLI_IMAGE:-redis:7.4.2-alpine}

# redis_sh SCRIPT: run SCRIPT (sh) in a pod; `cli` in it is redis-cli connected
# to REDIS_ADDR with the password, TLS and CA as configured.
redis_sh() {
  local cm secret script=$1
  cm=$(kubectl -n "$NS" get deploy redis-keda-publisher -o jsonpath='{.spec.template.spec.containers[0].envFrom[0].configMapRef.name}')
  secret=$(kubectl -n "$NS" get deploy redis-keda-publisher -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="REDIS_PASSWORD")].valueFrom.secretKeyRef.name}')
  local prelude='host=${REDIS_ADDR%:*}; port=${REDIS_ADDR##*:}; tls=; [ "$REDIS_TLS" = true ] && tls=--tls; [ -n "$REDIS_TLS_CA_FILE" ] && [ -f "$REDIS_TLS_CA_FILE" ] && tls="$tls --cacert $REDIS_TLS_CA_FILE"; export REDISCLI_AUTH="$REDIS_PASSWORD"; cli() { redis-cli -h "$host" -p "$port" -n "${REDIS_DB:-0}" $tls "$@"; };'
  local overrides
  overrides=$(cat <<JSON
{"spec":{"automountServiceAccountToken":false,"securityContext":{"runAsNonRoot":true,"runAsUser":999,"seccompProfile":{"type":"RuntimeDefault"}},
 "containers":[{"name":"redis-cli","image":"$REDIS_CLI_IMAGE","command":["sh","-c"],"args":["$(printf '%s' "$prelude $script" | tr '\n' ' ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"],
  "envFrom":[{"configMapRef":{"name":"$cm"}}],
  "env":[{"name":"REDIS_PASSWORD","valueFrom":{"secretKeyRef":{"name":"$secret","key":"password"}}}],
  "resources":{"requests":{"cpu":"10m","memory":"16Mi"},"limits":{"cpu":"200m","memory":"64Mi"}},
  "securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]}}}]}}
JSON
)
  kubectl -n "$NS" run "redis-keda-cli-$(date +%s)" --rm -i --quiet --restart=Never \
    --image="$REDIS_CLI_IMAGE" \
    --labels=app.kubernetes.io/name=redis-keda,app.kubernetes.io/component=publisher \
    --overrides="$overrides"
}

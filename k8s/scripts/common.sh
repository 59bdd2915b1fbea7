# Sourced by the other scripts. Nothing here runs anything on load except
# finding the repository root.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVERLAY=${OVERLAY:-dev}
REDIS_CLI_IMAGE=${REDIS_CLI_IMAGE:-redis:7.4.6-alpine}
# Where `task image` records the image it built last; `task deploy` of a
# local overlay uses it. (.task/ is git-ignored and removed by `task clean`.)
last_image_file=$root/.task/last-image

die() {
  echo "$(basename "$0" .sh): $*" >&2
  exit 1
}

# image_tag prints the tag for the working tree: `git describe --tags
# --always` (a release tag, or tag-N-gSHA, or the short SHA), and for a tree
# with uncommitted changes "-dirty-" plus a hash of those changes, so every
# rebuild after an edit gets a new tag (and rolls the Deployment) while
# rebuilding the same tree gives the same tag.
image_tag() {
  command -v git >/dev/null 2>&1 || die "git not found: cannot derive the image tag; set TAG=..."
  local d
  d=$(git -C "$root" describe --tags --always 2>/dev/null) ||
    die "$root is not a git checkout with a commit: cannot derive the image tag; set TAG=..."
  if [[ -n $(git -C "$root" status --porcelain --untracked-files=normal 2>/dev/null) ]]; then
    local h
    h=$({
      git -C "$root" diff HEAD --binary
      git -C "$root" ls-files -z --others --exclude-standard | (cd "$root" && xargs -0 -r sha256sum)
    } | sha256sum | cut -c1-10)
    d=$d-dirty-$h
  fi
  # Docker tags: [A-Za-z0-9_.-], at most 128 characters.
  printf '%s\n' "$d" | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-128
}

# overlay_namespace prints the namespace OVERLAY deploys to.
overlay_namespace() {
  kubectl kustomize "$root/k8s/overlays/$OVERLAY" | awk '/^kind: Namespace$/{ns=1} ns && /^  name:/{print $2; exit}'
}

# redis_sh SCRIPT: run SCRIPT (sh) in a pod; `cli` in it is redis-cli connected
# to REDIS_ADDR as the application user (REDIS_USERNAME, REDIS_PASSWORD), with
# TLS and the CA as configured. It works for in-cluster and external Redis
# alike, and the network-policy component admits it (it carries the
# publisher's labels).
redis_sh() {
  local cm secret script=$1
  cm=$(kubectl -n "$NS" get deploy redis-keda-publisher -o jsonpath='{.spec.template.spec.containers[0].envFrom[0].configMapRef.name}')
  secret=$(kubectl -n "$NS" get deploy redis-keda-publisher -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="REDIS_PASSWORD")].valueFrom.secretKeyRef.name}')
  local prelude='host=${REDIS_ADDR%:*}; port=${REDIS_ADDR##*:}; tls=; [ "$REDIS_TLS" = true ] && tls=--tls; [ -n "$REDIS_TLS_CA_FILE" ] && [ -f "$REDIS_TLS_CA_FILE" ] && tls="$tls --cacert $REDIS_TLS_CA_FILE"; user=; [ -n "$REDIS_USERNAME" ] && user="--user $REDIS_USERNAME"; export REDISCLI_AUTH="$REDIS_PASSWORD"; cli() { redis-cli -h "$host" -p "$port" -n "${REDIS_DB:-0}" $user $tls "$@"; };'
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

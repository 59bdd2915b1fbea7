#!/usr/bin/env bash
# build.sh builds every Go binary of the e2e test bed and of its real node,
# from the Go module proxy, in ONE place:
#
#   kube            one multi-call binary (tools/k8s/main.go) for the six
#                   Kubernetes commands; next to it the names callers run,
#                   symlinks to it: kube-apiserver, kube-controller-manager,
#                   kube-scheduler, kubectl, kubelet, kube-proxy
#   etcd            tools/etcd
#   keda-operator   github.com/kedacore/keda/v2/cmd/operator (tools/keda)
#   keda-crds/      KEDA's config/crd kustomization, copied from the module
#   coredns         tools/coredns (the real node's cluster DNS)
#   pause           images/pause (the real node's sandbox image)
#
# Two compile streams run at once — [kube, etcd] and [keda-operator, coredns,
# pause] — so the links and the long single-package compiles of one fill the
# other's idle core. Each step logs its time and the load average.
#
# Output: <cache>/bin/<stamp>/ (git-ignored), where <stamp> names every
# version, so a version bump builds into a fresh folder. A binary already
# there is not rebuilt. Progress goes to stderr; the last line on stdout is
# the absolute path of the bin folder, so callers can do
#   BIN=$(e2e/build.sh)
#
# Env: E2E_CACHE overrides e2e/.cache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[e2e build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }

# Versions come from the tools modules' go.mod, so a bump there is a new stamp.
modversion() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/tools/$1/go.mod"; }
K8S_VERSION=$(modversion k8s k8s.io/kubernetes)
ETCD_VERSION=$(modversion etcd go.etcd.io/etcd/server/v3)
KEDA_VERSION=$(modversion keda github.com/kedacore/keda/v2)
COREDNS_VERSION=$(modversion coredns github.com/coredns/coredns)
for v in K8S_VERSION ETCD_VERSION KEDA_VERSION COREDNS_VERSION; do
  [[ -n "${!v}" ]] || { log "cannot read $v from e2e/tools/*/go.mod"; exit 1; }
done
K8S_MAJOR=${K8S_VERSION#v}; K8S_MAJOR=${K8S_MAJOR%%.*}
K8S_MINOR=${K8S_VERSION#v*.}; K8S_MINOR=${K8S_MINOR%%.*}

cache=${E2E_CACHE:-$here/.cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
goversion=$(go env GOVERSION)
stamp="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_keda-${KEDA_VERSION}_coredns-${COREDNS_VERSION}_${goversion}"
bin="$cache/bin/$stamp"
mkdir -p "$bin"

# One build at a time per cache (a test and the CLI may start together).
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build.sh is running on $cache; waiting for it"
  flock 9
fi

k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
missing=()
for b in kube "${k8s_commands[@]}" etcd keda-operator coredns pause; do
  [[ -x "$bin/$b" ]] || missing+=("$b")
done
[[ -f "$bin/keda-crds/.complete" ]] || missing+=(keda-crds)

if ((${#missing[@]} == 0)); then
  log "all binaries present in $bin"
  echo "$bin"
  exit 0
fi
log "missing: ${missing[*]}"
# Measured here, cold (empty Go build cache, modules already downloaded), 2
# cores with other work on the machine: see e2e/README.md "Measured".
log "a cold build takes ~15 min on an idle 2-core machine (measured: ~1,810 CPU seconds; kube and keda-operator side by side, then etcd, coredns, pause), longer on a busy one; later runs reuse $bin"

# build <tools-module-dir> <package> <output-name> <ldflags> [env...]
build() {
  local dir=$1 pkg=$2 out=$3 ldflags=$4
  shift 4
  if [[ -x "$bin/$out" ]]; then
    log "$out: already built"
    return
  fi
  local start=$SECONDS cpu
  log "$out: building $pkg (load $(load)) ..."
  # `times` in the subshell: the CPU seconds of its children (go build and
  # the compilers), which load from other work does not inflate.
  # (`times` itself must not run in a pipe: a pipe's subshell has no children.)
  cpu=$(cd "$dir" && env "$@" go build -trimpath $gcflags -ldflags "$ldflags" -o "$bin/.$out.tmp" "$pkg" >&2 && times)
  cpu=$(awk 'END { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' <<<"$cpu")
  mv "$bin/.$out.tmp" "$bin/$out"
  log "$out: done in $((SECONDS - start))s, ${cpu}s CPU (load $(load))"
}

# No inlining (-l) for every binary of the bed: measured on etcd, cold,
# 74 s of CPU instead of 95 s (-22 %); the bed's binaries run a test cluster,
# where the slower code does not show. -N -l (no optimisation) saved nothing
# (94 s: bigger code to link). E2E_GCFLAGS="" builds as upstream does.
gcflags=${E2E_GCFLAGS--gcflags=all=-l}

total=$SECONDS

kv="-s -w"
kv+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
kv+=" -X k8s.io/component-base/version.gitMajor=${K8S_MAJOR}"
kv+=" -X k8s.io/component-base/version.gitMinor=${K8S_MINOR}"
kv+=" -X k8s.io/component-base/version.gitTreeState=clean"
kv+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
kv+=" -X k8s.io/client-go/pkg/version.gitMajor=${K8S_MAJOR}"
kv+=" -X k8s.io/client-go/pkg/version.gitMinor=${K8S_MINOR}"

stream_kube() {
  build "$here/tools/k8s" . kube "$kv"
  local c
  for c in "${k8s_commands[@]}"; do
    [[ -x "$bin/$c" ]] || ln -sfn kube "$bin/$c"
  done
  build "$here/tools/etcd" . etcd "-s -w"
}

stream_keda() {
  # KEDA's go.mod is resolved by go itself (GOFLAGS=-mod=mod), as upstream builds it.
  build "$here/tools/keda" github.com/kedacore/keda/v2/cmd/operator keda-operator \
    "-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION}" GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
  build "$here/tools/coredns" . coredns "-s -w" CGO_ENABLED=0
  build "$here" ./images/pause pause "-s -w" CGO_ENABLED=0

  if [[ ! -f "$bin/keda-crds/.complete" ]]; then
    local kedadir
    kedadir=$(cd "$here/tools/keda" && go mod download -json "github.com/kedacore/keda/v2@${KEDA_VERSION}" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -f "$kedadir/config/crd/kustomization.yaml" ]] || { log "KEDA CRDs not found under $kedadir/config/crd"; exit 1; }
    # The whole kustomization: its patches matter (e.g. ScaledJob template metadata
    # keeps labels only with x-kubernetes-preserve-unknown-fields). Apply with
    #   kubectl apply --server-side -k <bin>/keda-crds
    rm -rf "$bin/keda-crds" && mkdir -p "$bin/keda-crds"
    cp -r "$kedadir"/config/crd/. "$bin/keda-crds/"
    chmod -R u+w "$bin/keda-crds"
    touch "$bin/keda-crds/.complete"
    log "keda-crds: copied $kedadir/config/crd"
  fi
}

stream_kube &
kube_pid=$!
stream_keda &
keda_pid=$!
rc=0
wait "$kube_pid" || rc=$?
wait "$keda_pid" || rc=$?
if ((rc != 0)); then
  log "build failed (exit $rc); see the go build output above"
  exit "$rc"
fi

log "all done in $((SECONDS - total))s: $bin"
echo "$bin"

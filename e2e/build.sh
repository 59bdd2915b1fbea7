#!/usr/bin/env bash
# build.sh builds the real control-plane binaries of the e2e test bed from the
# Go module proxy: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl and the KEDA operator, and copies KEDA's CRDs.
#
# Output: e2e/.cache/bin/<stamp>/ (git-ignored), where <stamp> names every
# version, so a version bump builds into a fresh folder. A binary already
# there is not rebuilt. Progress goes to stderr; the last line on stdout is
# the absolute path of the bin folder, so callers can do
#   BIN=$(e2e/build.sh)
#
# Env: E2E_CACHE overrides e2e/.cache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[e2e build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Versions come from the tools modules' go.mod, so a bump there is a new stamp.
modversion() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/tools/$1/go.mod"; }
K8S_VERSION=$(modversion k8s k8s.io/kubernetes)
ETCD_VERSION=$(modversion etcd go.etcd.io/etcd/server/v3)
KEDA_VERSION=$(modversion keda github.com/kedacore/keda/v2)
for v in K8S_VERSION ETCD_VERSION KEDA_VERSION; do
  [[ -n "${!v}" ]] || { log "cannot read $v from e2e/tools/*/go.mod"; exit 1; }
done
K8S_MAJOR=${K8S_VERSION#v}; K8S_MAJOR=${K8S_MAJOR%%.*}
K8S_MINOR=${K8S_VERSION#v*.}; K8S_MINOR=${K8S_MINOR%%.*}

cache=${E2E_CACHE:-$here/.cache}
goversion=$(go env GOVERSION)
stamp="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_keda-${KEDA_VERSION}_${goversion}"
bin="$cache/bin/$stamp"
mkdir -p "$bin"

# One build at a time per cache (a test and the CLI may start together).
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build.sh is running on $cache; waiting for it"
  flock 9
fi

missing=()
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl keda-operator; do
  [[ -x "$bin/$b" ]] || missing+=("$b")
done
[[ -f "$bin/keda-crds/.complete" ]] || missing+=(keda-crds)

if ((${#missing[@]} == 0)); then
  log "all binaries present in $bin"
  echo "$bin"
  exit 0
fi
log "missing: ${missing[*]}"
log "first build takes ~13 min on 2 cores (~2.4 GB download, ~2.8 GB peak RAM); later runs reuse $bin"

# build <tools-module-dir> <package> <output-name> [ldflags]
build() {
  local dir=$1 pkg=$2 out=$3 ldflags=${4:-"-s -w"}
  if [[ -x "$bin/$out" ]]; then
    log "$out: already built"
    return
  fi
  local start=$SECONDS
  log "$out: building $pkg ..."
  (cd "$here/tools/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$out.tmp" "$pkg")
  mv "$bin/.$out.tmp" "$bin/$out"
  log "$out: done in $((SECONDS - start))s"
}

total=$SECONDS
build etcd . etcd

kv="-s -w"
kv+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
kv+=" -X k8s.io/component-base/version.gitMajor=${K8S_MAJOR}"
kv+=" -X k8s.io/component-base/version.gitMinor=${K8S_MINOR}"
kv+=" -X k8s.io/component-base/version.gitTreeState=clean"
kv+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
kv+=" -X k8s.io/client-go/pkg/version.gitMajor=${K8S_MAJOR}"
kv+=" -X k8s.io/client-go/pkg/version.gitMinor=${K8S_MINOR}"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build k8s "k8s.io/kubernetes/cmd/$c" "$c" "$kv"
done

# KEDA's go.mod is resolved by go itself (GOFLAGS=-mod=mod), as upstream builds it.
GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" build keda github.com/kedacore/keda/v2/cmd/operator keda-operator \
  "-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION}"

if [[ ! -f "$bin/keda-crds/.complete" ]]; then
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

log "all done in $((SECONDS - total))s: $bin"
echo "$bin"

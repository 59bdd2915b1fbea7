#!/usr/bin/env bash
# images/build.sh builds what the e2e REAL node runs, on top of the bed that
# e2e/build.sh builds (etcd, apiserver, ..., kubectl, KEDA):
#
#   bin/    kubelet, kube-proxy (the bed's multi-call kube binary, same pin as
#           the apiserver), coredns, pause: all compiled by e2e/build.sh, the
#           one builder of Go binaries, hard-linked (or copied) from its folder
#   images/ docker-archive tars, imported into containerd's k8s.io namespace
#           by the node at start:
#             redis-keda-e2e/pause:3.10          sandbox image (images/pause)
#             redis-keda-e2e/redis:bookworm      Debian's redis-server on a debootstrap rootfs
#             redis-keda-e2e/keda:<keda>         the keda-operator binary of e2e/build.sh
#             redis-keda-e2e/coredns:<coredns>   tools/coredns on the static base
#             redis-keda:e2e-node                THE PROJECT'S Dockerfile, built as written
#           The Dockerfile's two base images are made here under the names it
#           uses, so no registry is asked:
#             golang:<go>-bookworm               debootstrap bookworm + the host's Go
#             gcr.io/distroless/static-debian12:nonroot
#                                                passwd/group (nonroot 65532), CA
#                                                certificates, tzdata: distroless-equivalent
#
# Builder: buildah (Debian's package), --isolation chroot. See e2e/README.md
# ("Why buildah") for the reasons.
#
# Order on a cold cache (`all`): the two debootstraps (network) and
# e2e/build.sh (CPU: ~11 min) start together; the base images that need only
# the rootfs (debian, golang, static, redis) and the project image are built
# while the compile runs; pause, KEDA and CoreDNS images when it is done.
#
# Usage: images/build.sh [base|project|all]   (default all)
#   base     everything but the project image; cached under a version stamp
#   project  (re)build the project image from ../Dockerfile (buildah's layer
#            cache makes an unchanged tree a few seconds)
# The last line on stdout is the node folder: <cache>/node/<stamp>.
# Env: E2E_CACHE (default e2e/.cache), DEBIAN_MIRROR (default: the first
# deb.debian.org-style URI of apt's sources, else http://deb.debian.org/debian).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) # e2e/
root=$(cd "$here/.." && pwd)
log() { printf '[e2e node build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
what=${1:-all}
case $what in base | project | all) ;; *) log "usage: $0 [base|project|all]"; exit 2 ;; esac

need=(containerd runc ctr buildah debootstrap iptables ip unshare nsenter)
missing=()
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || missing+=(cni-plugins)
if ((${#missing[@]})); then
  log "missing: ${missing[*]}"
  log "install: apt-get install -y containerd runc containernetworking-plugins buildah debootstrap iptables iproute2 util-linux"
  exit 1
fi

modversion() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/tools/$1/go.mod"; }
K8S_VERSION=$(modversion k8s k8s.io/kubernetes)
COREDNS_VERSION=$(modversion coredns github.com/coredns/coredns)
KEDA_VERSION=$(modversion keda github.com/kedacore/keda/v2)
GO_VERSION=$(go env GOVERSION) # go1.26.8
GO_VERSION=${GO_VERSION#go}
K8S_MAJOR=${K8S_VERSION#v}; K8S_MAJOR=${K8S_MAJOR%%.*}
K8S_MINOR=${K8S_VERSION#v*.}; K8S_MINOR=${K8S_MINOR%%.*}

cache=${E2E_CACHE:-$here/.cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
stamp="k8s-${K8S_VERSION}_coredns-${COREDNS_VERSION}_keda-${KEDA_VERSION}_go${GO_VERSION}_bookworm"
node="$cache/node/$stamp"
mkdir -p "$node/bin" "$node/images"
buildah_root="$cache/buildah"
bah() { buildah --root "$buildah_root/storage" --runroot "$buildah_root/run" --storage-driver overlay "$@"; }

exec 8>"$cache/node.lock"
if ! flock -n 8; then
  log "another images/build.sh is running on $cache; waiting for it"
  flock 8
fi

ctx=$(mktemp -d "$cache/ctx.XXXXXX")
bedout="$ctx/bed.out"
bedpid=
cleanup() {
  [[ -n $bedpid ]] && kill "$bedpid" 2>/dev/null
  rm -rf "$ctx"
}
trap cleanup EXIT

# start_bed: e2e/build.sh in the background (every Go binary); wait_bed waits
# for it and sets $bed to its bin folder.
start_bed() {
  E2E_CACHE="$cache" bash "$here/build.sh" >"$bedout" &
  bedpid=$!
}
wait_bed() {
  local rc=0
  wait "$bedpid" || rc=$?
  bedpid=
  ((rc == 0)) || { log "e2e/build.sh failed (exit $rc)"; exit "$rc"; }
  bed=$(tail -n 1 "$bedout")
  [[ -x "$bed/kube" ]] || { log "e2e/build.sh printed no bin folder"; exit 1; }
}

# nodebin <name> <bed file>: the node's copy of a bed binary (a hard link).
nodebin() {
  [[ -x "$node/bin/$1" ]] && return
  ln -f "$bed/$2" "$node/bin/$1" 2>/dev/null || cp "$bed/$2" "$node/bin/$1"
}

# archive <image name> <tar>: export from buildah's storage for `ctr images import`.
archive() {
  rm -f "$2.tmp"
  bah push --quiet "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}

# bud <name> <context dir>: build <context dir>/Containerfile, never pulling.
bud() {
  bah bud --quiet --pull=never --isolation chroot --layers -t "$1" -f "$2/Containerfile" "$2" >/dev/null
}

mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(sed -n 's/^URIs:[[:space:]]*\(http[^ ]*\/debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [[ -n $m ]] || m=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "${m:-http://deb.debian.org/debian}"
}

# rootfs <name> <packages>: debootstrap --variant=minbase bookworm, once.
rootfs() {
  local dir="$cache/rootfs/$1"
  [[ -f "$dir.tar" ]] && return
  local start=$SECONDS
  rm -rf "$dir" && mkdir -p "$cache/rootfs"
  log "rootfs $1: debootstrap bookworm minbase + $2 from $(mirror) ..."
  debootstrap --variant=minbase --include="$2" bookworm "$dir" "$(mirror)" >"$dir.log" 2>&1 ||
    { log "debootstrap failed, see $dir.log"; tail -n 20 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  chroot "$dir" dpkg-query -W >"$cache/rootfs/$1.packages"
  tar -C "$dir" --numeric-owner -cf "$dir.tar.tmp" .
  mv "$dir.tar.tmp" "$dir.tar"
  rm -rf "$dir"
  log "rootfs $1: done in $((SECONDS - start))s ($(du -m "$dir.tar" | cut -f1) MB)"
}

# base_early: what needs only the debootstrapped rootfs (no compiled
# binary): debian, golang:<go>-bookworm, the static base, redis. Runs while
# e2e/build.sh compiles.
base_early() {
  local total=$SECONDS
  [[ -f "$node/images/.early" ]] && return
  # Two debootstraps at once: mostly download time.
  rootfs debian ca-certificates,tzdata &
  local p1=$!
  rootfs redis redis-server,redis-tools &
  local p2=$!
  wait $p1 || { log "rootfs debian failed"; exit 1; }
  wait $p2 || { log "rootfs redis failed"; exit 1; }

  # debian: the bare rootfs, base of the builder and of the KEDA image (the
  # operator binary is linked against glibc).
  mkdir -p "$ctx/debian" && ln "$cache/rootfs/debian.tar" "$ctx/debian/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n' >"$ctx/debian/Containerfile"
  bud redis-keda-e2e/debian:bookworm "$ctx/debian"
  log "image redis-keda-e2e/debian:bookworm"

  # golang:<go>-bookworm: what the Dockerfile's build stage names, with the
  # host's Go toolchain and the official image's environment.
  # The host's own extra CAs (e.g. a TLS-inspecting egress proxy's) go into
  # the builder only, so `go mod download` in the Dockerfile reaches the
  # module proxy as the host does; the runtime base keeps Debian's bundle.
  mkdir -p "$ctx/golang/host-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/golang/host-ca/" 2>/dev/null || true
  tar -C "$(go env GOROOT)/.." --numeric-owner --owner=0 --group=0 -cf "$ctx/golang/go.tar" "$(basename "$(go env GOROOT)")"
  cat >"$ctx/golang/Containerfile" <<EOF
FROM redis-keda-e2e/debian:bookworm
ADD go.tar /usr/local/
COPY host-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV GOLANG_VERSION=${GO_VERSION} GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version
WORKDIR /go
EOF
  bud "docker.io/library/golang:${GO_VERSION}-bookworm" "$ctx/golang"
  log "image golang:${GO_VERSION}-bookworm (host Go $(go env GOVERSION) on debootstrap bookworm)"

  # gcr.io/distroless/static-debian12:nonroot equivalent.
  local s="$ctx/static/fs"
  mkdir -p "$s/etc/ssl/certs" "$s/usr/share" "$s/tmp" "$s/home/nonroot" "$s/root"
  tar -C "$s" -xf "$cache/rootfs/debian.tar" ./etc/ssl/certs/ca-certificates.crt ./usr/share/zoneinfo
  cat >"$s/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$s/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  chmod 1777 "$s/tmp"
  chmod 700 "$s/root" "$s/home/nonroot"
  chown 65532:65532 "$s/home/nonroot"
  tar -C "$s" --numeric-owner -cf "$ctx/static/fs.tar" .
  rm -rf "$s"
  cat >"$ctx/static/Containerfile" <<'EOF'
FROM scratch
ADD fs.tar /
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot
EOF
  bud gcr.io/distroless/static-debian12:nonroot "$ctx/static"
  log "image gcr.io/distroless/static-debian12:nonroot (local equivalent: nonroot 65532, CA certificates, tzdata)"

  # redis: Debian's redis-server + redis-cli + a shell (probes, task load).
  mkdir -p "$ctx/redis" && ln "$cache/rootfs/redis.tar" "$ctx/redis/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nUSER 999:999\nCMD ["redis-server"]\n' >"$ctx/redis/Containerfile"
  bud redis-keda-e2e/redis:bookworm "$ctx/redis"
  archive redis-keda-e2e/redis:bookworm "$node/images/redis.tar"
  log "image redis-keda-e2e/redis:bookworm ($(grep -E '^redis-server\s' "$cache/rootfs/redis.packages" | cut -f2))"

  touch "$node/images/.early"
  log "rootfs-based images done in $((SECONDS - total))s"
}

# base_late: what needs the compiled binaries of e2e/build.sh.
base_late() {
  local total=$SECONDS
  [[ -f "$node/images/.complete" ]] && { log "base images present in $node/images"; return; }
  nodebin kubelet kube
  nodebin kube-proxy kube
  nodebin coredns coredns
  nodebin pause pause

  # pause: the sandbox image containerd is configured with.
  mkdir -p "$ctx/pause" && cp "$node/bin/pause" "$ctx/pause/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/pause/Containerfile"
  bud redis-keda-e2e/pause:3.10 "$ctx/pause"
  archive redis-keda-e2e/pause:3.10 "$node/images/pause.tar"

  # KEDA: the operator binary e2e/build.sh built, at /keda as upstream's image.
  mkdir -p "$ctx/keda" && cp "$bed/keda-operator" "$ctx/keda/keda"
  printf 'FROM redis-keda-e2e/debian:bookworm\nCOPY keda /keda\nUSER 65532:65532\nENTRYPOINT ["/keda"]\n' >"$ctx/keda/Containerfile"
  bud "redis-keda-e2e/keda:${KEDA_VERSION}" "$ctx/keda"
  archive "redis-keda-e2e/keda:${KEDA_VERSION}" "$node/images/keda.tar"

  # CoreDNS on the static base.
  mkdir -p "$ctx/coredns" && cp "$node/bin/coredns" "$ctx/coredns/coredns"
  printf 'FROM gcr.io/distroless/static-debian12:nonroot\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n' >"$ctx/coredns/Containerfile"
  bud "redis-keda-e2e/coredns:${COREDNS_VERSION}" "$ctx/coredns"
  archive "redis-keda-e2e/coredns:${COREDNS_VERSION}" "$node/images/coredns.tar"

  # KEDA's own install manifests (namespace, RBAC, operator Deployment,
  # service account), deployed by the node with the local image.
  local kedadir
  kedadir=$(cd "$here/tools/keda" && go mod download -json "github.com/kedacore/keda/v2@${KEDA_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$node/keda-config" && mkdir -p "$node/keda-config"
  for d in general rbac manager service_account; do cp -r "$kedadir/config/$d" "$node/keda-config/"; done
  chmod -R u+w "$node/keda-config"

  cat >"$node/versions.env" <<EOF
K8S_VERSION=$K8S_VERSION
COREDNS_VERSION=$COREDNS_VERSION
KEDA_VERSION=$KEDA_VERSION
GO_VERSION=$GO_VERSION
KEDA_IMAGE=redis-keda-e2e/keda:$KEDA_VERSION
COREDNS_IMAGE=redis-keda-e2e/coredns:$COREDNS_VERSION
PAUSE_IMAGE=redis-keda-e2e/pause:3.10
REDIS_IMAGE=redis-keda-e2e/redis:bookworm
PROJECT_IMAGE=redis-keda:e2e-node
EOF
  touch "$node/images/.complete"
  log "binaries and KEDA/CoreDNS/pause images done in $((SECONDS - total))s: $node"
}

project() {
  local start=$SECONDS
  [[ -f "$node/images/.early" ]] || { log "base images missing: run $0 base first"; exit 1; }
  local version
  version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
  log "project image redis-keda:e2e-node: buildah bud -f Dockerfile (VERSION=$version) ..."
  bah bud --quiet --pull=never --isolation chroot --layers \
    --build-arg "GO_VERSION=${GO_VERSION}" --build-arg "VERSION=$version" \
    --build-arg "REVISION=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t redis-keda:e2e-node -f "$root/Dockerfile" "$root" >/dev/null
  archive redis-keda:e2e-node "$node/images/redis-keda.tar"
  log "project image done in $((SECONDS - start))s ($(du -m "$node/images/redis-keda.tar" | cut -f1) MB archive)"
}

case $what in
base) start_bed && base_early && wait_bed && base_late ;;
project) project ;;
all) start_bed && base_early && project && wait_bed && base_late ;;
esac
echo "$node"

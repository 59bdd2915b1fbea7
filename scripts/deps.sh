#!/usr/bin/env bash
# deps.sh [--check] GROUP...: install, in ONE apt-get run, every Debian
# package the named groups need and this machine lacks.
#
#   redis     redis-server, redis-cli, redis-benchmark (redis-server, redis-tools)
#   promtool  promtool (prometheus): the metrics and alert-rule tests
#   chromium  chromium: the dashboard's browser tests (internal/ui)
#   node      what the real e2e node runs: containerd (+ shim, ctr), runc,
#             the CNI plugins, buildah, debootstrap, iptables, ip, unshare,
#             nsenter. Only where this machine can run containers (root, a
#             memory cgroup, E2E_NODE not "standin"); elsewhere the e2e suite
#             and the demo use the node stand-in, and this says so.
#
# Installs never race: every deps.sh on the machine takes one lock first
# (another one waits and then re-checks what is still missing), and apt-get
# itself waits for a dpkg/apt lock held by anything else
# (-o DPkg::Lock::Timeout). A failed install exits 1 with apt's own error
# (its stderr, untouched) and the exact command to run by hand.
#
# --check: install nothing; exit 0 when nothing is missing, 1 otherwise
# (the Taskfile's `status:`).
#
# Env (the tests set them; the defaults are the real paths):
#   DEPS_LOCK          lock file (default /tmp/redis-keda-deps.lock)
#   DEPS_LOCK_TIMEOUT  seconds apt-get waits for the dpkg lock (default 600)
#   DEPS_CGROUP        cgroup mount (default /sys/fs/cgroup)
#   DEPS_CNI_DIR       CNI plugin folder (default /usr/lib/cni)
set -uo pipefail

say() { printf 'deps: %s\n' "$*" >&2; }

check=0
if [[ ${1:-} == --check ]]; then
  check=1
  shift
fi
(($#)) || { say "usage: deps.sh [--check] redis|promtool|chromium|node..."; exit 2; }
for g in "$@"; do
  case $g in redis | promtool | chromium | node) ;; *) say "unknown group \"$g\" (redis, promtool, chromium, node)"; exit 2 ;; esac
done

cgroup=${DEPS_CGROUP:-/sys/fs/cgroup}
cni=${DEPS_CNI_DIR:-/usr/lib/cni}

# containers_reason: empty when this machine can run the real node's
# containers, else why not (the same rule as e2e/realnode.Available).
containers_reason() {
  if [[ ${E2E_NODE:-} == standin ]]; then
    echo "E2E_NODE=standin"
  elif [[ $(id -u) != 0 ]]; then
    echo "not root: kubelet, containerd and network namespaces need root"
  elif [[ ! -f $cgroup/memory/memory.limit_in_bytes ]] && ! grep -qw memory "$cgroup/cgroup.controllers" 2>/dev/null; then
    echo "no memory cgroup controller (neither cgroup v1 memory nor cgroup v2 with memory)"
  fi
}

# missing_packages: the packages of the groups whose command or file is
# missing, each once, in a fixed order.
missing_packages() {
  local g pkgs=()
  add() { [[ " ${pkgs[*]} " == *" $1 "* ]] || pkgs+=("$1"); }
  have() { command -v "$1" >/dev/null 2>&1; }
  for g in "$@"; do
    case $g in
    redis)
      have redis-server || add redis-server
      have redis-cli || add redis-tools
      have redis-benchmark || add redis-tools
      ;;
    promtool)
      have promtool || add prometheus
      ;;
    chromium)
      have chromium || add chromium
      ;;
    node)
      [[ -z $node_skip ]] || continue
      have containerd && have containerd-shim-runc-v2 && have ctr || add containerd
      have runc || add runc
      [[ -x $cni/bridge && -x $cni/host-local && -x $cni/loopback ]] || add containernetworking-plugins
      have buildah || add buildah
      have debootstrap || add debootstrap
      have iptables || add iptables
      have ip || add iproute2
      have unshare && have nsenter || add util-linux
      ;;
    esac
  done
  echo "${pkgs[*]}"
}

node_skip=
if [[ " $* " == *" node "* ]]; then
  node_skip=$(containers_reason)
  [[ -z $node_skip ]] || say "node: this machine cannot run containers ($node_skip): the e2e suite and the demo use the node stand-in; its packages are not installed"
fi

missing=$(missing_packages "$@")
if [[ -z $missing ]]; then
  ((check)) || say "all present for: $*"
  exit 0
fi
((check)) && exit 1

# One install at a time on this machine; whoever waited re-checks.
lock=${DEPS_LOCK:-/tmp/redis-keda-deps.lock}
exec 9>"$lock"
if ! flock -n 9; then
  say "another install is running (lock $lock); waiting for it"
  flock 9
  missing=$(missing_packages "$@")
  [[ -n $missing ]] || { say "all present for: $* (installed by the other run)"; exit 0; }
fi

sudo=
if [[ $(id -u) != 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=sudo
  else
    say "missing: $missing; not root and no sudo. Run as root:"
    say "  apt-get update && apt-get install -y --no-install-recommends $missing"
    exit 1
  fi
fi
wait_lock="-o DPkg::Lock::Timeout=${DEPS_LOCK_TIMEOUT:-600}"
fix="${sudo:+$sudo }apt-get update && ${sudo:+$sudo }apt-get install -y --no-install-recommends $missing"

say "installing: $missing (one apt-get run)"
# shellcheck disable=SC2086 # $wait_lock and $missing are lists of words
if ! $sudo apt-get $wait_lock update -qq; then
  say "apt-get update failed (its error is above). Fix it, then run:"
  say "  $fix"
  exit 1
fi
# shellcheck disable=SC2086
if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get $wait_lock install -y -qq --no-install-recommends $missing; then
  say "apt-get install failed (its error is above). Fix it, then run:"
  say "  $fix"
  exit 1
fi
still=$(missing_packages "$@")
if [[ -n $still ]]; then
  say "installed, yet still missing: $still. Run:"
  say "  ${sudo:+$sudo }apt-get install -y --no-install-recommends --reinstall $still"
  exit 1
fi
say "installed: $missing"

#!/bin/sh
# The e2e runner test's program (e2e/runner_test.go): the payload says what
# to do. Its JSON lines on stdout land in the pod log next to the runner's.
payload=$(cat)
id=$REDIS_KEDA_EVENT_ID
say() { printf '{"handler":"%s","id":"%s","attempt":%s}\n' "$1" "$id" "$REDIS_KEDA_ATTEMPT"; }
say ran
case "$payload" in
*'"do":"fail"'*) echo "failing on purpose: $id" >&2; exit 1 ;;
*'"do":"never"'*) echo "this one can never succeed: $id" >&2; exit 65 ;;
*'"do":"slow"'*)
  [ "$REDIS_KEDA_ATTEMPT" = 1 ] || exit 0
  trap 'say term' TERM
  while :; do sleep 1; done ;;
*'"do":"hold"'*)
  trap 'say term; exit 3' TERM
  until=$(echo "$payload" | sed 's/.*"until":\([0-9]*\).*/\1/')
  while [ "$(date +%s)" -lt "$until" ]; do sleep 1; done ;;
*'"do":"daemon"'*)
  # A daemon outside the process group holding stdout and stderr, one
  # inside it; wait until the first has left the group (else the group's
  # SIGKILL at this program's exit may catch it before setsid).
  setsid sh -c 'echo $$ > /tmp/daemon.pid; exec sleep 3600' &
  sleep 3600 &
  while [ ! -s /tmp/daemon.pid ]; do sleep 0.05; done
  say forked ;;
*'"do":"env"'*)
  if env | grep -q -i -e PASSWORD -e redis-keda-dev-only; then say secret-seen; exit 1; fi
  say env-clean ;;
*'"do":"oom"'*)
  x=$(head -c 100000000 /dev/zero | tr '\0' a)
  say survived ;;
esac

#!/bin/sh
# One event. The payload is on stdin (and in $REDIS_KEDA_PAYLOAD_FILE).
# Exit 0 = done; 65 = can never succeed (dead-lettered now); other = retried.
payload=$(cat)
echo "event $REDIS_KEDA_EVENT_ID, attempt $REDIS_KEDA_ATTEMPT of $REDIS_KEDA_MAX_ATTEMPTS: $payload"
case "$payload" in
  *'"fail"'*) echo "asked to fail" >&2; exit 1 ;;
  *'"never"'*) echo "this event can never succeed" >&2; exit 65 ;;
esac

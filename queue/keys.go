package queue

import "strings"

// Redis keys. Every key of a queue derives from its name, which is itself the
// pending list (the list producers LPUSH to and KEDA's redis trigger counts).
// The derived keys carry the name as a Redis Cluster hash tag, so all keys of
// one queue live in one hash slot and every Lua script below may touch them
// together:
//
//	name "events":        events, {events}:leases, {events}:claim:<token>, ...
//	name "{events}:high":  {events}:high, {events}:high:leases, ...
//
// Each accepted name has keys of its own, and no name is a key of another
// queue (Config.Validate):
//   - a name that is exactly a hash tag, "{events}", is refused: its derived
//     keys would be those of "events" (the same slot already), with a
//     different pending list — the pending list is the literal name KEDA
//     watches, so the two spellings cannot be made one queue, and making
//     them two would move the keys of one spelling's existing queues. One
//     reaper used to move the other spelling's expired events into its own
//     list, which KEDA did not watch;
//   - a tagged name with a segment :leases, :claimed, :dead, :counters,
//     :finished, :claim, :scheduled, :done, :cancel, :history or :runs after its tag ("{events}:dead") is refused: it is, or may become,
//     a key of the queue named by the part before.
//
// Several queues in one slot: "orders", "{orders}:high", "{orders}:low".

// hashTag returns "{name}" unless the name already holds a hash tag.
// Names with braces that do not form a tag are refused by Config.Validate.
func hashTag(name string) string {
	if hasHashTag(name) {
		return name // Redis hashes only the tag
	}
	return "{" + name + "}"
}

// hasHashTag follows Redis Cluster's rule: the first '{', then the first '}'
// after it, with at least one byte between.
func hasHashTag(name string) bool {
	if i := strings.IndexByte(name, '{'); i >= 0 {
		if j := strings.IndexByte(name[i+1:], '}'); j > 0 {
			return true
		}
	}
	return false
}

// isBareTag reports whether the name is a hash tag and nothing else:
// "{events}".
func isBareTag(name string) bool {
	return len(name) > 2 && name[0] == '{' && strings.IndexByte(name, '}') == len(name)-1
}

// reservedSegment returns the first ':'-separated segment after a tagged
// name's hash tag that is a derived key's suffix (leases, claimed, dead,
// counters, finished, claim, scheduled, done, cancel, history, runs: see
// below and schedule.go, done.go, cancel.go, page.go), or "".
func reservedSegment(name string) string {
	if !hasHashTag(name) {
		return "" // its keys are {name}:..., never another untagged name
	}
	i := strings.IndexByte(name, '{')
	j := i + 1 + strings.IndexByte(name[i+1:], '}')
	for _, seg := range strings.Split(name[j+1:], ":") {
		switch seg {
		case "leases", "claimed", "dead", "counters", "finished", "claim", "scheduled", "done", "cancel", "history", "runs":
			return seg
		}
	}
	return ""
}

// pendingKey is the LIST of events waiting to be claimed. Producers LPUSH,
// consumers BRPOPLPUSH from the right: oldest first. An entry is either the
// producer's payload, byte for byte, or — once the event has been delivered —
// an envelope that wraps those bytes with the queue's bookkeeping (see
// envelope.go).
func pendingKey(name string) string { return name }

// claimKey is one delivery's processing LIST, named by its claim token:
// BRPOPLPUSH moves the pending entry into it, then the lease script pushes the
// delivery's header in front of it. So it holds 0 entries (registered, nothing
// claimed yet), 1 (claimed, not leased yet) or 2 (header, entry: in flight).
// One list per delivery makes every transition O(1), makes a claim retry-safe
// (the token says where a lost BRPOPLPUSH reply put the entry) and lets a job
// interrupted mid-claim find exactly what it moved.
func claimKey(name, token string) string { return claimPrefix(name) + token }

// claimPrefix is what the reaper's script prepends to a token.
func claimPrefix(name string) string { return hashTag(name) + ":claim:" }

// leasesKey is the ZSET claim token -> deadline (Unix ms, Redis server
// clock). A token is added before its BRPOPLPUSH (deadline = claim timeout +
// lease duration) and moved to now + LEASE_DURATION by the lease script and
// every heartbeat. The reaper recovers the claim lists of tokens past their
// deadline.
func leasesKey(name string) string { return hashTag(name) + ":leases" }

// claimedKey is the ZSET claim token -> Unix ms when the delivery was leased:
// the in-flight events, oldest first.
func claimedKey(name string) string { return hashTag(name) + ":claimed" }

// deadKey is the LIST of dead letters: JSON records with the payload and the
// reason it could not be processed. Newest at the left.
func deadKey(name string) string { return hashTag(name) + ":dead" }

// countersKey is the HASH outcome -> total since the queue was created
// (acked, retried, dead, released, reaped_requeued, reaped_rescued,
// reaped_dead, reaped_stale): updated by the same scripts that move the events.
func countersKey(name string) string { return hashTag(name) + ":counters" }

// finishedKey is the ZSET "<claim token>:<outcome>" -> expiry (Unix ms) of
// recently finished deliveries (acked, retried, dead, released): a finishing
// script run again after its reply was lost finds its own marker and reports
// "already done" instead of "lease lost". Markers live for the finishing
// retry window; each finish prunes up to two expired ones.
func finishedKey(name string) string { return hashTag(name) + ":finished" }

// doneKey is the HASH event id -> done record (JSON, see done.go) of the
// events acked lately: the ack script writes it, bounded by
// DONE_MAX_RECORDS and DONE_MAX_AGE with doneOrderKey.
func doneKey(name string) string { return hashTag(name) + ":done" }

// doneOrderKey is the ZSET event id -> Unix ms (Redis server clock) of its
// last ack: the order in which the ack script trims done records, oldest
// first.
func doneOrderKey(name string) string { return hashTag(name) + ":done:order" }

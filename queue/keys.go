package queue

import "strings"

// Redis keys. Every key of a queue derives from its name, which is itself the
// pending list (the list producers LPUSH to and KEDA's redis trigger counts).
// The derived keys carry the name as a Redis Cluster hash tag, so all keys of
// one queue live in one hash slot and every Lua script below may touch them
// together:
//
//	name "events":   events, {events}:processing, {events}:leases, ...
//	name "{events}": {events}, {events}:processing, {events}:leases, ...
//
// Both spellings work on a Redis Cluster: the slot of "events" is the slot of
// the tag "{events}".

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

// pendingKey is the LIST of events waiting to be claimed. Producers LPUSH,
// consumers BRPOPLPUSH from the right: oldest first.
func pendingKey(name string) string { return name }

// processingKey is the LIST of claimed events. Each entry is the payload plus
// a per-delivery "claim" token, so identical payloads in flight stay distinct.
// Right after BRPOPLPUSH an entry is briefly the raw payload, until the lease
// script replaces it (see Claim).
func processingKey(name string) string { return hashTag(name) + ":processing" }

// leasesKey is the ZSET of processing entries, scored by lease deadline
// (Unix ms, Redis server clock).
func leasesKey(name string) string { return hashTag(name) + ":leases" }

// attemptsKey is the HASH event id -> deliveries so far.
func attemptsKey(name string) string { return hashTag(name) + ":attempts" }

// deadKey is the LIST of dead letters: JSON records with the payload and the
// reason it could not be processed. Newest at the left.
func deadKey(name string) string { return hashTag(name) + ":dead" }

// unleasedKey is the HASH raw processing entry -> Unix ms when the reaper
// first saw it without a lease (a consumer died between BRPOPLPUSH and the
// lease script).
func unleasedKey(name string) string { return hashTag(name) + ":unleased" }

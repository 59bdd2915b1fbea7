package queue

import "errors"

var (
	// ErrNoEvent is returned by Claim when no event arrived within the claim
	// timeout. For a run-to-completion job it means "nothing to do": KEDA may
	// start a job for an event that another job has already taken.
	ErrNoEvent = errors.New("no event to claim")

	// ErrInvalidEvent is wrapped by errors for payloads that can never be
	// processed (not a JSON object, missing or bad "wait", wait above
	// MAX_WAIT, larger than MAX_PAYLOAD_BYTES, out of attempts). Claim has
	// already dead-lettered such a payload, with the reason, when it returns
	// this; use errors.As with *InvalidEventError for the details.
	ErrInvalidEvent = errors.New("invalid event")

	// ErrLeaseLost means the delivery is no longer ours: its lease expired
	// and the reaper gave the event back to the queue (or dead-lettered it).
	// Another consumer may process it; do not ack it again.
	ErrLeaseLost = errors.New("lease lost")

	// ErrVanished means the delivery's claim list and lease disappeared
	// while its lease was still valid. No queue operation does that (the
	// reaper takes only expired leases): Redis lost the data — restarted
	// without persistence, was flushed, or failed over to a replica that had
	// not received those writes. After a failover the event may be pending
	// again (it will be processed again); after a restart without
	// persistence it is gone with everything else.
	ErrVanished = errors.New("event lost by Redis: its claim list and lease vanished while the lease was valid")

	// ErrClaimInterrupted is returned by Claim when its context ended while
	// it waited. Whatever the claim had moved out of the pending list is back
	// at its front; ClaimInterruptedError says whether there was something.
	ErrClaimInterrupted = errors.New("claim interrupted")

	// ErrPayloadTooLarge is returned by PublishRaw for a payload above
	// MAX_PAYLOAD_BYTES (nothing of the call is published).
	ErrPayloadTooLarge = errors.New("payload too large")

	// ErrInvalidConfig wraps configuration errors from New.
	ErrInvalidConfig = errors.New("invalid queue configuration")

	// ErrNotReplicated is returned by Publish and PublishRaw with
	// REDIS_MIN_REPLICAS > 0 when fewer replicas than that acknowledged the
	// batch within REDIS_MIN_REPLICAS_TIMEOUT (or the wait's reply was
	// lost). The batch may be on the master: retry it with the same ids.
	// A *NotReplicatedError gives the count.
	ErrNotReplicated = errors.New("not replicated")
)

// errFinished: a finishing script found its delivery already finished the
// same way by the same claim — an earlier run whose reply was lost.
var errFinished = errors.New("already finished by this claim (an earlier reply was lost)")

// ClaimInterruptedError details ErrClaimInterrupted.
type ClaimInterruptedError struct {
	// Released is the size in bytes of the entry the claim had moved and
	// put back at the front of the pending list; -1 when it had moved
	// nothing.
	Released int
	// Err is set when putting the entry back failed: it is then still in its
	// claim list, and the reaper will return it after its deadline.
	Err error
}

func (e *ClaimInterruptedError) Error() string {
	switch {
	case e.Err != nil:
		return "claim interrupted; putting the claimed entry back failed (the reaper will recover it): " + e.Err.Error()
	case e.Released >= 0:
		return "claim interrupted; the claimed entry is back at the front of the pending list"
	default:
		return "claim interrupted before anything was claimed"
	}
}

// Is makes errors.Is(err, ErrClaimInterrupted) true.
func (e *ClaimInterruptedError) Is(target error) bool { return target == ErrClaimInterrupted }

func (e *ClaimInterruptedError) Unwrap() error { return e.Err }

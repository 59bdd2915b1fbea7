package queue

import "errors"

var (
	// ErrNoEvent is returned by Claim when no event arrived within the claim
	// timeout. For a run-to-completion job it means "nothing to do": KEDA may
	// start a job for an event that another job has already taken.
	ErrNoEvent = errors.New("no event to claim")

	// ErrInvalidEvent is wrapped by errors for payloads that can never be
	// processed (not a JSON object, missing or bad "wait", wait above
	// MAX_WAIT). Claim has already dead-lettered such a payload, with the
	// reason, when it returns this; use errors.As with *InvalidEventError for
	// the details.
	ErrInvalidEvent = errors.New("invalid event")

	// ErrLeaseLost means the delivery is no longer ours: its lease expired
	// and the reaper gave the event back to the queue (or dead-lettered it).
	// Another consumer may process it; do not ack it again.
	ErrLeaseLost = errors.New("lease lost")

	// ErrInvalidConfig wraps configuration errors from New.
	ErrInvalidConfig = errors.New("invalid queue configuration")
)

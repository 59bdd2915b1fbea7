// Package jobs is the built-in workload that runs in each Kubernetes Job of
// the seed: claim one event {"wait": N}, sleep N seconds, ack it. It is one
// handler of the public worker package (the command runner, internal/runner,
// is the other); the binaries jobs/ and cmd/redis-keda run it.
package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis-keda/redis-keda/worker"
	"go.uber.org/zap"
)

// Config is the jobs process's configuration (environment variables): the
// worker's.
type Config = worker.Config

// Run is worker.Run with the sleep handler, accepting only the sleep's
// events (a JSON object with a valid "wait"; others are dead-lettered at
// their claim, with the reason).
func Run(ctx context.Context, log *zap.Logger, c Config) error {
	c.RequireWait = true
	return worker.Run(ctx, log, c, worker.HandlerFunc(sleep))
}

// sleep is the job's work: wait the event's seconds, or stop early on ctx.
func sleep(ctx context.Context, j *worker.Job) error {
	ev, err := queue.DecodeEvent(j.Payload, 0) // validated at the claim already
	if err != nil {
		return fmt.Errorf("%w: %w", worker.SkipRetry, err)
	}
	t := time.NewTimer(ev.Wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

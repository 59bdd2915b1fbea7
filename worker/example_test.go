package worker_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis-keda/redis-keda/worker"
	"go.uber.org/zap"
)

// A program that ships orders: one event per Kubernetes Job.
func Example() {
	handle := func(ctx context.Context, job *worker.Job) error {
		var order struct {
			Item string `json:"item"`
		}
		if err := json.Unmarshal(job.Payload, &order); err != nil {
			return fmt.Errorf("%w: not an order: %v", worker.SkipRetry, err) // dead-lettered now
		}
		fmt.Printf("event %s, attempt %d of %d: ship a %s\n", job.ID, job.Attempt, job.MaxAttempts, order.Item)
		return nil // acked; any other error: retried, dead-lettered after MAX_ATTEMPTS
	}

	// A program's main is one line, configured by the environment
	// (REDIS_ADDR, QUEUE, MAX_EVENTS …):
	//
	//	worker.Main(worker.HandlerFunc(handle))
	//
	// Here the same loop runs through Run, on a real redis-server whose
	// queue "orders" holds {"id":"order-1","item":"book"}.
	c, err := worker.ConfigFromEnv()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := worker.Run(context.Background(), zap.NewNop(), c, worker.HandlerFunc(handle)); err != nil {
		fmt.Println(err)
	}
	// Output: event order-1, attempt 1 of 5: ship a book
}

// Command publisher is the long-running Deployment: every PUBLISH_INTERVAL it
// pushes BATCH_SIZE events ({"id","published_at","wait"}) onto the pending
// list, every REAP_INTERVAL it runs the reaper that brings back the events of
// jobs that died, and it serves /healthz and /readyz on HTTP_ADDR.
// BATCH_SIZE=0 turns publishing off: where real producers fill the queue, the
// Deployment still runs the reaper.
//
// On SIGTERM or SIGINT it finishes the batch in progress, stops and exits 0.
// It takes no arguments but --help (exit 2 for any other).
package main

import (
	"context"
	"os"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/publisher"
	"github.com/redis-keda/redis-keda/internal/service"
	"go.uber.org/zap"
)

var version = "dev" // set with -ldflags "-X main.version=..."

func main() {
	p := config.Program{Name: "publisher", Summary: publisher.Summary, Config: publisher.Config{}}
	if code, exit := p.Args(os.Args[1:], os.Stdout, os.Stderr); exit { // --help, or a refused argument
		os.Exit(code)
	}
	service.Main("publisher", version, (*publisher.Config).Level, func(ctx context.Context, log *zap.Logger, c publisher.Config) error {
		c.Version = version
		return publisher.Run(ctx, log, c)
	})
}

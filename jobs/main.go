// Command jobs is the run-to-completion consumer: KEDA's ScaledJob starts one
// Kubernetes Job per pending event, and each runs this program, which claims
// one event (BRPOPLPUSH into the processing list), sleeps its "wait" seconds
// while heartbeating the lease, acks it and exits 0.
//
// Exit codes: 0 when the event was processed, retried, released on SIGTERM,
// dead-lettered, or when there was nothing to claim (KEDA may start a job for
// an event another job already took); 1 when Redis stayed unreachable or the
// configuration is invalid; 2 when given an argument (it takes only
// --help: the environment configures it). Whatever happens, the event stays in Redis until
// it is acked or dead-lettered; the publisher's reaper recovers it if this
// process dies.
package main

import (
	"os"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/jobs"
	"github.com/redis-keda/redis-keda/internal/service"
)

var version = "dev" // set with -ldflags "-X main.version=..."

func main() {
	p := config.Program{Name: "jobs", Summary: jobs.Summary, Config: jobs.Config{}}
	if code, exit := p.Args(os.Args[1:], os.Stdout, os.Stderr); exit { // --help, or a refused argument
		os.Exit(code)
	}
	service.Main("jobs", version, (*jobs.Config).Level, jobs.Run)
}

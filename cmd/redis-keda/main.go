// Command redis-keda is the jobs and publisher binaries in one executable
// (a multi-call binary, like busybox), for the container image: the two
// share the Go runtime, go-redis, zap and crypto/tls, so one binary is about
// half the size of two. The image links /jobs and /publisher to it; the name
// it is run as picks the program:
//
//	/jobs                  = jobs/      (the consumer of a KEDA ScaledJob)
//	/publisher             = publisher/ (the Deployment)
//	redis-keda jobs|publisher          (the same, by argument)
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/redis-keda/redis-keda/internal/jobs"
	"github.com/redis-keda/redis-keda/internal/publisher"
	"github.com/redis-keda/redis-keda/internal/service"
)

var version = "dev" // set with -ldflags "-X main.version=..."

func main() {
	name := filepath.Base(os.Args[0])
	if name != "jobs" && name != "publisher" && len(os.Args) > 1 {
		name = os.Args[1]
	}
	switch name {
	case "jobs":
		service.Main("jobs", version, (*jobs.Config).Level, jobs.Run)
	case "publisher":
		service.Main("publisher", version, (*publisher.Config).Level, publisher.Run)
	default:
		fmt.Fprintf(os.Stderr, "redis-keda %s: run as jobs or publisher (a link named so, or the first argument)\n", version)
		os.Exit(2)
	}
}

// Command redis-keda is the jobs and publisher binaries in one executable
// (a multi-call binary, like busybox), for the container image, plus the
// operator's commands: the programs share the Go runtime, go-redis, zap and
// crypto/tls, so one binary is about half the size of two. The image links
// /jobs and /publisher to it; the name it is run as picks the program:
//
//	/jobs                  = jobs/      (the consumer of a KEDA ScaledJob)
//	/publisher             = publisher/ (the Deployment)
//	redis-keda jobs|publisher          (the same, by argument)
//	redis-keda stats|peek|inspect|redrive|purge ...   (internal/cli)
//
// `redis-keda --help` lists everything, with the exit codes; `redis-keda
// help jobs` (or `jobs --help`) lists a program's environment variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/redis-keda/redis-keda/internal/cli"
	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/jobs"
	"github.com/redis-keda/redis-keda/internal/publisher"
	"github.com/redis-keda/redis-keda/internal/service"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

var version = "dev" // set with -ldflags "-X main.version=..."

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name != "jobs" && name != "publisher" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	invoked := name // as the user typed it, for the programs' messages
	if name != filepath.Base(os.Args[0]) {
		invoked = "redis-keda " + name
	}
	if (name == "help" || name == "--help" || name == "-h") && len(args) == 1 && program(args[0], args[0]) != nil {
		// redis-keda help jobs|publisher
		p := program(args[0], "redis-keda "+args[0])
		fmt.Fprint(os.Stdout, p.Usage())
		return
	}
	if p := program(name, invoked); p != nil {
		// --help and unknown arguments are answered before the
		// configuration is read or Redis is dialed.
		if code, exit := p.Args(args, os.Stdout, os.Stderr); exit {
			os.Exit(code)
		}
	}
	switch {
	case name == "jobs":
		service.Main("jobs", version, (*jobs.Config).Level, jobs.Run)
	case name == "publisher":
		service.Main("publisher", version, (*publisher.Config).Level, func(ctx context.Context, log *zap.Logger, c publisher.Config) error {
			c.Version = version
			return publisher.Run(ctx, log, c)
		})
	case cli.IsCommand(name):
		redis.SetLogger(quiet{}) // errors reach the operator once, from the command
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := cli.Run(ctx, append([]string{name}, args...), nil, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case len(os.Args) == 1:
		fmt.Fprintf(os.Stderr, "redis-keda %s: which command? run as jobs or publisher (a link named so, or the first argument), or give an operator command\n\n%s", version, cli.Usage())
		os.Exit(cli.ExitUsage)
	default:
		fmt.Fprintf(os.Stderr, "redis-keda %s: unknown command %q\n\n%s", version, name, cli.Usage())
		os.Exit(cli.ExitUsage)
	}
}

// program is the jobs or publisher program (nil for anything else), for its
// --help and its arguments.
func program(name, invoked string) *config.Program {
	switch name {
	case "jobs":
		return &config.Program{Name: invoked, Summary: jobs.Summary, Config: jobs.Config{}}
	case "publisher":
		return &config.Program{Name: invoked, Summary: publisher.Summary, Config: publisher.Config{}}
	}
	return nil
}

// quiet drops go-redis's own log lines (connection pool notices).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

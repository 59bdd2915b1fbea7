// Package cli is the operator's command line: `redis-keda stats`, `peek`,
// `inspect`, `redrive`, `purge` and `publish`, subcommands of the image's multi-call
// binary. They read the same environment variables as the jobs (REDIS_*,
// QUEUE, LEASE_DURATION, MAX_ATTEMPTS, MAX_PAYLOAD_BYTES, ...), parse every
// argument before connecting — a bad argument changes nothing — and each has
// --json output and --help with an example.
//
// The standard library's flag package is enough for five subcommands with
// a handful of flags each; a framework (cobra) would add a dependency and
// ~1 MB to the image for nothing these commands need.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/queue"
)

// Exit codes of every subcommand.
const (
	ExitOK       = 0 // done
	ExitFailure  = 1 // Redis unreachable or failing, or invalid configuration
	ExitUsage    = 2 // bad command, flag or argument, purge without --yes, or a publish batch with a refused event: nothing changed
	ExitNotFound = 3 // inspect, redrive or cancel: an id or reference matched nothing: nothing changed
	ExitRefused  = 4 // redrive: a dead letter cannot be redriven (payload above MAX_PAYLOAD_BYTES, unreadable record); by id nothing changed, with --all the others were redriven
)

// Config is what the subcommands read from the environment: the jobs' Redis
// and queue settings.
type Config struct {
	Redis queue.RedisConfig
	Queue queue.Config
}

// command is one subcommand.
type command struct {
	name, summary, usage string
	// run parses args (flags and operands) into a function that does the
	// work, so that bad arguments are refused before connecting.
	parse func(fs *flag.FlagSet, args []string) (action, error)
}

// action does a command's work on an open queue and returns its exit code.
type action func(ctx context.Context, e *env) int

// env is what an action works with.
type env struct {
	q              *queue.Queue
	cfg            Config
	name           string // the command's name, for messages
	stdout, stderr io.Writer
	stdin          io.Reader
	json           bool
	environ        map[string]string // nil: the process's
}

// now is the local clock, for ages shown to people.
func (e *env) now() time.Time { return time.Now() }

func commands() []command {
	return []command{statsCommand(), peekCommand(), inspectCommand(), redriveCommand(), purgeCommand(), publishCommand(), cancelCommand(), uiCommand()}
}

// IsCommand reports whether name is one of the operator subcommands (or
// help), for the multi-call main.
func IsCommand(name string) bool {
	if name == "help" || name == "-h" || name == "--help" {
		return true
	}
	return slices.ContainsFunc(commands(), func(c command) bool { return c.name == name })
}

// Usage is the top-level help: every subcommand, the programs the binary
// also is, and the exit codes.
func Usage() string {
	var b strings.Builder
	b.WriteString(`redis-keda: the redis-keda programs and the operator's commands, in one binary.

Usage:
  redis-keda <command> [flags] [arguments]

` + usageEnv + `:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Programs (what the image runs; also reachable as /jobs and /publisher):
  jobs       claim one event, process it, ack it (one Kubernetes Job per event)
  publisher  publish events, run the reaper, serve /healthz, /readyz and /metrics
  run        run [flags] -- CMD [ARGS...]: claim one event, run your program on it
             (payload on stdin), finish the event by its exit code; run --help
  install    install DIR: copy this binary to DIR/redis-keda (the runner's init container)

Run 'redis-keda <command> --help' for a command's flags and an example.
` + exitCodes)
	return b.String()
}

// usageEnv names every variable the operator commands read (Config): the
// Redis connection, standalone or Sentinel, and the queue's settings.
const usageEnv = `Operator commands (read the same environment variables as the jobs:
REDIS_MODE, REDIS_ADDR, REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB, REDIS_TLS,
REDIS_TLS_CA_FILE, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_USERNAME,
REDIS_SENTINEL_PASSWORD, QUEUE, LEASE_DURATION, MAX_ATTEMPTS, MAX_PAYLOAD_BYTES)`

const exitCodes = `
Exit codes:
  0  done
  1  Redis unreachable or failing, or invalid configuration
  2  bad command, flag or argument, purge without --yes, or publish of a batch
     with a refused event: nothing changed
  3  inspect, redrive, cancel: an id or reference matched nothing: nothing changed
  4  redrive: a dead letter cannot be redriven (payload above MAX_PAYLOAD_BYTES,
     unreadable record): by id nothing changed; with --all the others moved
`

// Run runs the subcommand args[0] with its flags and arguments args[1:],
// reading the configuration from environ (nil: the process's environment),
// and returns the exit code.
func Run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	return RunIO(ctx, args, environ, os.Stdin, stdout, stderr)
}

// RunIO is Run with stdin given (publish reads events from it).
func RunIO(ctx context.Context, args []string, environ map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 { // help <command>
			return RunIO(ctx, []string{args[1], "--help"}, environ, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, Usage())
		return ExitOK
	}
	i := slices.IndexFunc(commands(), func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "redis-keda: unknown command %q\nRun 'redis-keda --help' for the list.\n", args[0])
		return ExitUsage
	}
	cmd := commands()[i]
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "")
	act, err := cmd.parse(fs, args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, cmd.usage+exitCodes)
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "redis-keda %s: %v\nRun 'redis-keda %s --help' for usage.\n", cmd.name, err, cmd.name)
		return ExitUsage
	}

	var cfg Config
	if err := config.ParseFrom(&cfg, environ); err != nil {
		fmt.Fprintf(stderr, "redis-keda %s: %v\n", cmd.name, err)
		return ExitFailure
	}
	q, err := queue.Open(cfg.Redis, cfg.Queue)
	if err != nil {
		fmt.Fprintf(stderr, "redis-keda %s: %v\n", cmd.name, err)
		return ExitFailure
	}
	defer q.Close()
	return act(ctx, &env{q: q, cfg: cfg, name: cmd.name, stdin: stdin, stdout: stdout, stderr: stderr, json: *jsonOut, environ: environ})
}

// fail reports err once and returns its exit code.
func (e *env) fail(err error) int {
	code := ExitFailure
	switch {
	case errors.Is(err, queue.ErrNotFound):
		code = ExitNotFound
	case errors.Is(err, queue.ErrRedriveRefused):
		code = ExitRefused
	}
	msg := err.Error()
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, io.EOF) {
		msg += fmt.Sprintf(" (Redis at REDIS_ADDR=%s: is it running and reachable?)", e.cfg.Redis.Addr)
	}
	fmt.Fprintf(e.stderr, "redis-keda %s: %s\n", e.name, msg)
	return code
}

// writeJSON prints v as indented JSON.
func (e *env) writeJSON(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail(fmt.Errorf("write JSON: %w", err))
	}
	return ExitOK
}

// parseInterleaved parses flags that may come before, between or after the
// operands; everything after "--" is an operand.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(operands, rest...), nil
		}
		operands = append(operands, args[0])
		args = args[1:]
	}
}

// age formats a duration for people: whole seconds from 10 s on, tenths
// below.
func age(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// stamp formats an instant in UTC with milliseconds.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

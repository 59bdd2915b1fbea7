package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/redis-keda/redis-keda/queue"
)

func cancelCommand() command {
	return command{
		name:    "cancel",
		summary: "stop an in-flight event: its job stops, the event is dead-lettered (redrive brings it back)",
		usage: `Usage: redis-keda cancel ID|@REF [--json]
       redis-keda cancel --id ID [--json]

Asks the job processing the in-flight event ID (or the entry whose
reference starts with @REF, as peek processing shows it) to stop. The job
reads the request at its next heartbeat (within LEASE_DURATION/3), cancels
its handler — the runner sends SIGTERM to its program's process group — and
dead-letters the event with reason "cancelled by operator", so that
'redis-keda redrive ID' can bring it back. Only events in flight can be
cancelled; the cost grows with the events in flight, not with the queue.

Flags:
  --id ID  the event id ID, taken literally (e.g. --id @home)
  --json   a JSON array of the deliveries asked to stop

Examples:
  redis-keda cancel evt-42
  redis-keda cancel @3f2a9c1b7d0e --json
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			sel, err := oneSelector(fs, args, "cancel")
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) int { return cancel(ctx, e, sel) }, nil
		},
	}
}

func cancel(ctx context.Context, e *env, sel queue.Selector) int {
	es, err := e.q.Cancel(ctx, sel)
	if err != nil {
		return e.fail(err)
	}
	if e.json {
		out := make([]entryJSON, len(es))
		for i, en := range es {
			out[i] = toJSON(en)
		}
		return e.writeJSON(out)
	}
	for _, en := range es {
		fmt.Fprintf(e.stdout, "cancel requested: %s (claim %s, attempt %d); its job dead-letters it at its next heartbeat\n", name(en), en.Token, en.Attempts)
	}
	return ExitOK
}

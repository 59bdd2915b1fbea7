package cli

import (
	"context"
	"flag"
	"fmt"
	"net"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/ui"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func uiCommand() command {
	return command{
		name:    "ui",
		summary: "serve the dashboard (overview, lists, find, redrive, purge, cancel) until SIGTERM/SIGINT",
		usage: `Usage: redis-keda ui [--addr HOST:PORT] [--read-only]

Serves the queue's dashboard in a browser: the overview (counts and oldest
age per state, Redis, the reaper's last run, acked/retried/dead per minute
over the last hour), a paged list of each state, find by id, @reference or
text, and the operator's actions (redrive, purge, cancel: each a POST with a
CSRF token and a confirmation step). Prints its URL, then serves until
SIGTERM or SIGINT. Everything it needs is in the binary (no CDN).

Safe by default: it listens on UI_ADDR (127.0.0.1:8081: loopback only) and
accepts only the Host names localhost, 127.0.0.1, ::1, the listen address's
host and UI_ALLOWED_HOSTS (against DNS rebinding). For an exposed dashboard,
set UI_USERNAME with UI_PASSWORD or UI_PASSWORD_FILE (basic auth) and/or
UI_TOKEN or UI_TOKEN_FILE (Authorization: Bearer), and UI_READ_ONLY=true for
no buttons at all (every POST refused).

Environment (besides the Redis and queue variables): UI_ADDR, UI_READ_ONLY,
UI_USERNAME, UI_PASSWORD, UI_PASSWORD_FILE, UI_TOKEN, UI_TOKEN_FILE,
UI_ALLOWED_HOSTS, UI_PAGE_SIZE (50), UI_SEARCH_LIMIT (1000), UI_REFRESH (5s).

Flags:
  --addr HOST:PORT  listen there instead of UI_ADDR
  --read-only       as UI_READ_ONLY=true

Examples:
  redis-keda ui
  UI_USERNAME=ops UI_PASSWORD_FILE=/secrets/ui redis-keda ui --addr 0.0.0.0:8081
`,
		parse: func(fs *flag.FlagSet, args []string) (action, error) {
			addr := fs.String("addr", "", "")
			ro := fs.Bool("read-only", false, "")
			ops, err := parseInterleaved(fs, args)
			if err != nil {
				return nil, err
			}
			if len(ops) > 0 {
				return nil, fmt.Errorf("ui takes no arguments, got %q", ops)
			}
			if *addr != "" {
				if _, _, err := net.SplitHostPort(*addr); err != nil {
					return nil, fmt.Errorf("--addr %q is not host:port, such as 127.0.0.1:8081", *addr)
				}
			}
			return func(ctx context.Context, e *env) int { return serveUI(ctx, e, *addr, *ro) }, nil
		},
	}
}

func serveUI(ctx context.Context, e *env, addr string, readOnly bool) int {
	var uc ui.Config
	if err := config.ParseFrom(&uc, e.environ); err != nil {
		return e.fail(err)
	}
	if addr != "" {
		uc.Addr = addr
	}
	uc.ReadOnly = uc.ReadOnly || readOnly
	if !uc.Enabled() {
		return e.fail(fmt.Errorf("UI_ADDR=off: nothing to serve; give --addr"))
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(e.stderr), zap.InfoLevel))
	srv, err := ui.New(e.q, e.cfg.Redis, uc, log)
	if err != nil {
		return e.fail(err)
	}
	ln, err := net.Listen("tcp", uc.Addr)
	if err != nil {
		return e.fail(fmt.Errorf("listen on UI_ADDR %s: %w", uc.Addr, err))
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		host = "127.0.0.1"
	}
	mode := ""
	if uc.ReadOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(e.stdout, "dashboard of queue %s%s: http://%s/\n", e.cfg.Queue.Name, mode, net.JoinHostPort(host, port))
	if err := srv.Serve(ctx, ln); err != nil {
		return e.fail(err)
	}
	return ExitOK
}

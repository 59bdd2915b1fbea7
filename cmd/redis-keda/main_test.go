package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// The built binary dispatches to the operator commands and exits with their
// codes (the in-process behaviour is tested in internal/cli).
func TestBinaryRunsOperatorCommands(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "redis-keda")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := redistest.Start(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // prefix
		stderr string // prefix
	}{
		{nil, 2, "", "redis-keda dev: which command? run as jobs or publisher"},
		{[]string{"frobnicate"}, 2, "", "redis-keda dev: unknown command \"frobnicate\""},
		{[]string{"--help"}, 0, "redis-keda: the redis-keda programs", ""},
		{[]string{"stats"}, 0, "queue events\n  pending               0\n", ""},
		{[]string{"inspect", "nope"}, 3, "", "redis-keda inspect: not found"},
		{[]string{"purge", "dead"}, 2, "", "redis-keda purge: refusing"},
		{[]string{"run", "--help"}, 0, "usage: redis-keda run [flags] -- CMD [ARGS...]", ""},
		{[]string{"run"}, 2, "", `{"level":"error"`}, // no CMD: the usage error, logged
		{[]string{"run", "--", "no-such-program-here"}, 3, "", `{"level":"error"`},
		{[]string{"install"}, 2, "", "redis-keda install: give the directory"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(os.Environ(), "REDIS_ADDR="+srv.Addr, "QUEUE=events")
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.HasPrefix(out.String(), tc.stdout) || !strings.HasPrefix(errOut.String(), tc.stderr) {
			t.Errorf("redis-keda %q: exit %d\nstdout %q\nstderr %q", tc.args, code, out.String(), errOut.String())
		}
	}
}

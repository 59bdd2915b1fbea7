package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/internal/testbin"
)

// The built binary dispatches to the operator commands and exits with their
// codes (the in-process behaviour is tested in internal/cli).
func TestBinaryRunsOperatorCommands(t *testing.T) {
	bin, err := testbin.Build(t.TempDir(), "redis-keda", ".")
	if err != nil {
		t.Fatal(err)
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
		out, errOut, code := runCmd(t, cmd)
		if code != tc.code || !strings.HasPrefix(out, tc.stdout) || !strings.HasPrefix(errOut, tc.stderr) {
			t.Errorf("redis-keda %q: exit %d\nstdout %q\nstderr %q", tc.args, code, out, errOut)
		}
	}
}

// jobs and publisher answer --help (and `redis-keda help jobs`) with their
// variables and refuse any other argument (exit 2), before reading the
// configuration or dialing Redis: `redis-keda jobs --help` used to run the
// job and ack a real event. Every form, through the multi-call binary (by
// argument and by link name) and the jobs/ and publisher/ binaries, runs
// against a real redis-server holding one event with the jobs' settings
// that would claim it at once; afterwards the event is still pending, byte
// for byte, and Redis holds no other key.
func TestProgramsAnswerHelpWithoutTouchingRedis(t *testing.T) {
	dir := t.TempDir()
	bins := map[string]string{
		"redis-keda": ".", "jobs-bin": "../../jobs", "publisher-bin": "../../publisher",
	}
	for name, pkg := range bins {
		if _, err := testbin.Build(dir, name, pkg); err != nil {
			t.Fatal(err)
		}
	}
	for _, link := range []string{"jobs", "publisher"} {
		if err := os.Symlink(filepath.Join(dir, "redis-keda"), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	srv := redistest.Start(t)
	const event = `{"id":"keep-me","wait":0}`
	srv.Do("LPUSH", "events", event)

	jobsHelp := "redis-keda jobs: claims one event from the queue"
	for _, tc := range []struct {
		bin    string
		args   []string
		code   int
		stdout string // prefix
		stderr string // exact
	}{
		{"redis-keda", []string{"jobs", "--help"}, 0, jobsHelp, ""},
		{"redis-keda", []string{"jobs", "-h"}, 0, jobsHelp, ""},
		{"redis-keda", []string{"help", "jobs"}, 0, jobsHelp, ""},
		{"redis-keda", []string{"--help", "publisher"}, 0, "redis-keda publisher: publishes BATCH_SIZE synthetic events", ""},
		{"redis-keda", []string{"publisher", "--help"}, 0, "redis-keda publisher: publishes BATCH_SIZE synthetic events", ""},
		{"jobs", []string{"--help"}, 0, "jobs: claims one event", ""},
		{"publisher", []string{"help"}, 0, "publisher: publishes", ""},
		{"jobs-bin", []string{"--help"}, 0, "jobs: claims one event", ""},
		{"publisher-bin", []string{"--help"}, 0, "publisher: publishes", ""},
		{"redis-keda", []string{"jobs", "--dry-run"}, 2, "", "redis-keda jobs: unknown argument \"--dry-run\": redis-keda jobs takes no arguments, only environment variables; run 'redis-keda jobs --help' for the list\n"},
		{"redis-keda", []string{"jobs", "--help", "x"}, 2, "", "redis-keda jobs: unknown argument \"--help\": redis-keda jobs takes no arguments, only environment variables; run 'redis-keda jobs --help' for the list\n"},
		{"redis-keda", []string{"publisher", "events"}, 2, "", "redis-keda publisher: unknown argument \"events\": redis-keda publisher takes no arguments, only environment variables; run 'redis-keda publisher --help' for the list\n"},
		{"jobs", []string{"-v"}, 2, "", "jobs: unknown argument \"-v\": jobs takes no arguments, only environment variables; run 'jobs --help' for the list\n"},
		{"jobs-bin", []string{"once"}, 2, "", "jobs: unknown argument \"once\": jobs takes no arguments, only environment variables; run 'jobs --help' for the list\n"},
		{"publisher-bin", []string{"--limit=1"}, 2, "", "publisher: unknown argument \"--limit=1\": publisher takes no arguments, only environment variables; run 'publisher --help' for the list\n"},
	} {
		cmd := exec.Command(filepath.Join(dir, tc.bin), tc.args...)
		cmd.Env = append(os.Environ(), "REDIS_ADDR="+srv.Addr, "QUEUE=events", "CLAIM_TIMEOUT=1s",
			"BATCH_SIZE=5", "HTTP_ADDR=127.0.0.1:0", "UI_ADDR=127.0.0.1:0", "REAP_INTERVAL=1s")
		out, errOut, code := runCmd(t, cmd)
		if code != tc.code || !strings.HasPrefix(out, tc.stdout) || errOut != tc.stderr {
			t.Errorf("%s %q: exit %d\nstdout %q\nstderr %q", tc.bin, tc.args, code, out, errOut)
		}
		if tc.code == 0 && !strings.Contains(out, "\n  REDIS_ADDR                  localhost:6379\n") {
			t.Errorf("%s %q: the help does not list REDIS_ADDR and its default:\n%s", tc.bin, tc.args, out)
		}
		keys := srv.Do("KEYS", "*").([]any)
		pending := srv.Do("LRANGE", "events", 0, -1).([]any)
		if len(keys) != 1 || keys[0] != "events" || len(pending) != 1 || pending[0] != event {
			t.Fatalf("after %s %q: keys %q, pending %q; want only the event %q, untouched", tc.bin, tc.args, keys, pending, event)
		}
	}
}

// runCmd runs cmd and returns its stdout, stderr and exit code; an error
// other than a non-zero exit fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

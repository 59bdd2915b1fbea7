//go:build e2e

package e2e_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testRealDashboard: `task ui` port-forwards (a real `kubectl port-forward`
// through the real kubelet and containerd) to the publisher's dashboard,
// which listens on 127.0.0.1 inside its pod only, prints the URL, and the
// overview loads with the queue's counts.
func testRealDashboard(ctx context.Context, t *testing.T, b *realBed) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.CommandContext(ctx, "go", "tool", "task", "ui", "OVERLAY=e2e-node", "PORT="+strconv.Itoa(port))
	cmd.Dir, cmd.Env = b.root, b.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // task, the script and kubectl: stopped together
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	// Every line is read (kubectl prints one per connection: an unread
	// pipe would stall it) and kept for the failure message.
	var mu sync.Mutex
	var all []string
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			mu.Lock()
			all = append(all, sc.Text())
			mu.Unlock()
			// Task colours its own lines when CI is set, and the colour's
			// reset (ESC[0m) then opens the script's next line: the URL line
			// is found anywhere in a line. (CI's run had "\x1b[0mdashboard: …".)
			if i := strings.Index(sc.Text(), "dashboard: "); first && i >= 0 {
				first = false
				lines <- sc.Text()[i:]
			}
		}
		close(lines)
	}()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	want := "dashboard: " + url
	var printed []string
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("task ui ended without printing %q:\n%s", want, strings.Join(printed, "\n"))
			}
			printed = append(printed, l)
			found = strings.HasPrefix(l, want)
		case <-time.After(2 * time.Minute):
			t.Fatalf("task ui printed no URL in 2 min:\n%s", strings.Join(printed, "\n"))
		}
	}
	var body string
	var lastErr error
	client := &http.Client{Timeout: 10 * time.Second}
	defer func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			logs, _ := b.c.Kubectl(ctx, "-n", devNS, "logs", "deploy/redis-keda-publisher", "--tail", "30")
			t.Logf("last GET error: %v\ntask ui output:\n%s\npublisher log:\n%s", lastErr, strings.Join(all, "\n"), logs)
		}
	}()
	waitFor(ctx, t, "the dashboard through the port-forward", 2*time.Minute, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			lastErr = err
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	for _, s := range []string{`<title>Overview · events · redis-keda</title>`, `id="count-pending"`, `id="run-reaper">`} {
		if !strings.Contains(body, s) {
			t.Errorf("the overview lacks %q:\n%s", s, body)
		}
	}
	t.Logf("task ui printed %q; the overview loaded through the port-forward (%d bytes)", want, len(body))
}

package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopKillsGroup: a shell that ignores SIGTERM and leaves a background
// child must be gone, child included, after Stop.
func TestStopKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p, err := Start(Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c",
		"trap '' TERM; sleep 300 & echo $! > " + pidFile + "; wait"}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
	}
	if child == 0 {
		t.Fatal("no child pid")
	}
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop took %s", d)
	}
	if !p.Exited() {
		t.Fatal("leader not reaped")
	}
	// The child is reparented to init, which reaps it; give it a moment.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(child, 0); err != nil {
			return
		}
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); strings.Contains(string(b), ") Z ") {
			return // zombie: dead, waiting for its reaper
		}
	}
	t.Fatalf("child %d survived Stop", child)
}

func TestExitCode(t *testing.T) {
	p, err := Start(Spec{Name: "false", Path: "/bin/sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if p.ExitCode() != 3 {
		t.Fatalf("exit code %d", p.ExitCode())
	}
}

// TestGroup: each process logs to LogDir/<name>.log; StopReverse stops all
// but the kept ones, in reverse order; Close ends the group once.
func TestGroup(t *testing.T) {
	dir := t.TempDir()
	g := &Group{What: "cluster", LogDir: dir, Dir: dir}
	order := filepath.Join(dir, "order")
	var started []*Process
	for _, name := range []string{"first", "second", "third"} {
		// Each writes its name to its log, then on SIGTERM appends it to order.
		p, err := g.Start(name, "/bin/sh", nil, "-c", "echo "+name+"; pwd; trap 'echo "+name+" >> order; exit 0' TERM; while :; do sleep 0.05; done")
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, p)
	}
	if got := g.Procs(); len(got) != 3 || got[0] != started[0] || got[2] != started[2] {
		t.Fatalf("Procs: %v", got)
	}
	for _, name := range []string{"first", "second", "third"} { // the trap is set once the log has both lines
		for {
			if b, _ := os.ReadFile(filepath.Join(dir, name+".log")); string(b) == name+"\n"+dir+"\n" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	procs, first := g.Close()
	if !first || len(procs) != 3 {
		t.Fatalf("Close: %d procs, first %v", len(procs), first)
	}
	if _, again := g.Close(); again {
		t.Error("a second Close reported first")
	}
	if _, err := g.Start("late", "/bin/sh", nil, "-c", "true"); err == nil || err.Error() != "start late: cluster stopped" {
		t.Errorf("Start after Close: %v", err)
	}
	if err := StopReverse(procs, 10*time.Second, "first"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(order); string(b) != "third\nsecond\n" {
		t.Errorf("stop order %q, want third then second (first kept)", b)
	}
	if procs[0].Exited() {
		t.Error("the kept process was stopped")
	}
	if err := StopReverse(procs[:1], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	g.CloseLogs()
}

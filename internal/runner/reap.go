package runner

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER (linux/prctl.h).
const prSetChildSubreaper = 36

// reaper waits for every child of the process: the programs it starts
// (whose status it hands to their supervisor) and the orphans that are
// re-parented to it — to PID 1 in a container, to a child subreaper
// elsewhere — which would otherwise stay zombies (tini's job). It owns
// wait4(-1): nothing else in the process may wait for children.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	sigs    chan os.Signal
	quit    chan struct{}
	done    chan struct{}
}

// startReaper makes the process a child subreaper (when it is not PID 1)
// and starts reaping on SIGCHLD.
func startReaper() (*reaper, error) {
	if os.Getpid() != 1 {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			return nil, fmt.Errorf("become a child subreaper (prctl PR_SET_CHILD_SUBREAPER): %w", errno)
		}
	}
	r := &reaper{
		waiting: map[int]chan syscall.WaitStatus{},
		sigs:    make(chan os.Signal, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r, nil
}

func (r *reaper) loop() {
	defer close(r.done)
	for {
		r.reap()
		select {
		case <-r.sigs:
		case <-r.quit:
			r.reap()
			return
		}
	}
}

// reap collects every child that has ended.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var st syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			ch <- st
			delete(r.waiting, pid)
		}
	}
}

// start starts cmd and returns a channel that gets its wait status. The
// lock makes sure the reaper knows the pid before it can collect it.
func (r *reaper) start(cmd *exec.Cmd) (<-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = ch
	return ch, nil
}

// stop reaps what has ended and stops.
func (r *reaper) stop() {
	signal.Stop(r.sigs)
	close(r.quit)
	<-r.done
}

// oomKills reads the container's cgroup OOM-kill count (cgroup v2
// memory.events, else v1 memory.oom_control); ok is false when neither is
// readable.
func oomKills() (n int64, ok bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if v, found := strings.CutPrefix(sc.Text(), "oom_kill "); found {
				n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				fh.Close()
				return n, err == nil
			}
		}
		fh.Close()
	}
	return 0, false
}

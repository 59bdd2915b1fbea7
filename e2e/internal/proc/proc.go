// Package proc runs child processes in their own process group and stops them
// by PID: SIGTERM to the group, a grace period, then SIGKILL to the group.
// Nothing is ever killed by name.
package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Spec describes a process to start.
type Spec struct {
	Name string   // for messages
	Path string   // executable
	Args []string // without argv[0]
	Env  []string // full environment; nil means the parent's
	Dir  string
	// Stdout and Stderr receive the output; nil means discarded.
	Stdout, Stderr io.Writer
}

// Process is a started child process, leader of its own process group.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	waitErr error
}

// Start starts the process in a new process group. The child also gets
// SIGKILL if the thread that started it dies (Pdeathsig), a safety net for a
// parent that is killed without running its cleanup.
func Start(s Spec) (*Process, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdout = s.Stdout
	cmd.Stderr = s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Process{Name: s.Name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id (also the process group id).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the result of Wait once Done is closed (nil for exit status 0).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// ExitCode returns the exit code once Done is closed; a process killed by a
// signal reports 128+signal, like a shell.
func (p *Process) ExitCode() int {
	st := p.cmd.ProcessState
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pgid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// Stop sends SIGTERM to the process group, waits up to grace for the leader
// to exit, then sends SIGKILL to the group. It always kills the rest of the
// group at the end, so children the leader left behind go too. It returns
// once the leader is reaped.
func (p *Process) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	// Kill the group even if the leader exited: stragglers must not survive.
	if err := syscall.Kill(-p.PID(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pgid %d): %w", p.Name, p.PID(), err)
	}
	<-p.done
	return nil
}

// OpenLog creates (truncating) a log file for a process.
func OpenLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// Group starts named processes with their output in <LogDir>/<name>.log,
// keeps them in start order and stops them: the one starter of the bed's
// control plane (package cluster) and of the real node (package realnode).
type Group struct {
	What   string // "cluster", "node": for the message of a start after Close
	LogDir string
	Dir    string // working directory of every process

	mu     sync.Mutex
	procs  []*Process
	files  []*os.File
	closed bool
}

// Start starts path with args (env nil: the parent's environment) as name,
// its stdout and stderr in LogDir/<name>.log. It fails once Close was called.
func (g *Group) Start(name, path string, env []string, args ...string) (*Process, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("start %s: %s stopped", name, g.What)
	}
	f, err := OpenLog(filepath.Join(g.LogDir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g.files = append(g.files, f)
	p, err := Start(Spec{Name: name, Path: path, Args: args, Env: env, Dir: g.Dir, Stdout: f, Stderr: f})
	if err != nil {
		return nil, err
	}
	g.procs = append(g.procs, p)
	return p, nil
}

// Procs returns the processes started so far, in start order.
func (g *Group) Procs() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}

// Close ends the group: no more Start. It returns the processes in start
// order, and false when the group was already closed (a second Stop).
func (g *Group) Close() ([]*Process, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	g.closed = true
	return g.procs, true
}

// StopReverse stops procs in reverse start order (SIGTERM to the group,
// grace, SIGKILL), skipping those keep names: the caller stops them later.
func StopReverse(procs []*Process, grace time.Duration, keep ...string) error {
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if slices.Contains(keep, procs[i].Name) {
			continue
		}
		if err := procs[i].Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CloseLogs closes the processes' log files (after they stopped).
func (g *Group) CloseLogs() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range g.files {
		_ = f.Close()
	}
	g.files = nil
}

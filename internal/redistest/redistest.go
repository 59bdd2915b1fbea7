// Package redistest starts a real redis-server for tests: a fresh process on
// a free loopback port with its own temp dir, stopped when the test ends.
// There is no fake Redis in this project's tests.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Addr     string
	Password string
	Dir      string

	t    testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Option changes the server's configuration.
type Option func(*settings)

type settings struct {
	password string
	aof      bool
	cluster  bool
}

// WithClusterMode starts the server with cluster-enabled yes (no slots
// assigned): enough for CLUSTER KEYSLOT.
func WithClusterMode() Option { return func(s *settings) { s.cluster = true } }

// WithPassword makes the server require a password (requirepass).
func WithPassword(p string) Option { return func(s *settings) { s.password = p } }

// WithAOF turns on the append-only file (fsync always), so a restart keeps
// every acknowledged write.
func WithAOF() Option { return func(s *settings) { s.aof = true } }

// Binary returns the redis-server path, or fails the test with instructions:
// tests in this project need a real Redis.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH: install it (Debian: apt-get install -y redis-server); the queue tests run against a real Redis")
	}
	return p
}

// Start starts redis-server on a free 127.0.0.1 port in t.TempDir() and stops
// it (SIGKILL by PID) when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var st settings
	for _, o := range opts {
		o(&st)
	}
	bin := Binary(t)
	dir := t.TempDir()
	port := freePort(t)
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if st.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if st.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	}
	if st.password != "" {
		args = append(args, "--requirepass", st.password)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: st.password, Dir: dir, t: t, args: append([]string{bin}, args...)}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)

	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s not ready after 10s: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, MaxRetries: -1})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL: nothing is flushed beyond what the AOF
// already holds) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port and dir.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// StartAgain starts a stopped server on the same port and dir: with AOF it
// comes back with every acknowledged write.
func (s *Server) StartAgain() { s.start() }

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// Info returns one field of INFO (e.g. "redis_version").
func (s *Server) Info(field string) string {
	c := s.Client()
	out, err := c.Info(context.Background()).Result()
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

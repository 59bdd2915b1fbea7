// Package redistest starts a real redis-server for tests: a fresh process on
// a free loopback port with its own temp dir, stopped when the test ends.
// There is no fake Redis in this project's tests.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
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

// Server is a running redis-server (or redis-sentinel).
type Server struct {
	Addr     string
	Password string // the default user's; the helpers' own clients use it
	Dir      string
	// TLS is set when the server speaks only TLS: a client configuration
	// that trusts the test CA, whose files are in PKI.
	TLS *tls.Config
	PKI *PKI

	t    testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Option changes the server's configuration (or a topology's: StartCluster,
// StartSentinel).
type Option func(*settings)

type settings struct {
	password string
	aof      bool
	cluster  bool
	tls      bool
	pki      *PKI // made once per server or topology when tls
	users    []aclUser

	sentinelPassword string
	sentinelUsers    []aclUser
}

type aclUser struct {
	name, password string
	rules          []string
}

// WithTLS makes every server speak TLS only, with a fresh test CA (see
// PKI): clients, replication, the cluster bus and sentinels alike.
func WithTLS() Option { return func(s *settings) { s.tls = true } }

// WithUser adds an ACL user to every data node (not the sentinels), with
// the given ACL SETUSER rules, or full access (~* &* +@all) when none.
func WithUser(name, password string, rules ...string) Option {
	return func(s *settings) { s.users = append(s.users, aclUser{name, password, rules}) }
}

// WithSentinelPassword makes the sentinels require a password for their
// default user (requirepass); they use it among themselves too.
func WithSentinelPassword(p string) Option { return func(s *settings) { s.sentinelPassword = p } }

// WithSentinelUser adds an ACL user to every sentinel, with the given rules
// or full access when none.
func WithSentinelUser(name, password string, rules ...string) Option {
	return func(s *settings) { s.sentinelUsers = append(s.sentinelUsers, aclUser{name, password, rules}) }
}

func newSettings(t testing.TB, opts []Option) *settings {
	st := &settings{}
	for _, o := range opts {
		o(st)
	}
	if st.tls {
		st.pki = NewPKI(t)
	}
	return st
}

// clientTLS is the TLS configuration of the helpers' own clients, or nil.
func (st *settings) clientTLS(t testing.TB) *tls.Config {
	if st.pki == nil {
		return nil
	}
	return st.pki.ClientTLS(t)
}

// listen is the directives that open port: plain TCP, or TLS only.
func (st *settings) listen(port int) [][]string {
	if st.pki == nil {
		return [][]string{{"port", strconv.Itoa(port)}}
	}
	return [][]string{
		{"port", "0"}, {"tls-port", strconv.Itoa(port)},
		{"tls-cert-file", st.pki.CertFile}, {"tls-key-file", st.pki.KeyFile},
		{"tls-ca-cert-file", st.pki.CAFile},
		{"tls-auth-clients", "no"}, // clients need no certificate
		{"tls-replication", "yes"}, // replicas and sentinels connect with TLS
	}
}

// directives is the configuration of a data node on port in dir.
func (st *settings) directives(port int, dir string) [][]string {
	d := [][]string{
		{"bind", "127.0.0.1"}, {"dir", dir}, {"save", ""}, {"daemonize", "no"},
		{"logfile", filepath.Join(dir, "redis.log")},
		{"enable-debug-command", "local"}, // DEBUG SLEEP in tests
		{"repl-diskless-sync-delay", "0"}, // replicas sync at once, not after 5 s
		{"repl-ping-replica-period", "1"}, // a write to every replica each second (see syncCheck)
	}
	d = append(d, st.listen(port)...)
	if st.aof {
		d = append(d, []string{"appendonly", "yes"}, []string{"appendfsync", "always"})
	} else {
		d = append(d, []string{"appendonly", "no"})
	}
	if st.password != "" {
		// masterauth: replicas authenticate to their master as the default user.
		d = append(d, []string{"requirepass", st.password}, []string{"masterauth", st.password})
	}
	for _, u := range st.users {
		d = append(d, u.directive())
	}
	return d
}

func (u aclUser) directive() []string {
	rules := u.rules
	if len(rules) == 0 {
		rules = []string{"~*", "&*", "+@all"} // full access
	}
	return append([]string{"user", u.name, "on", ">" + u.password}, rules...)
}

// args turns directives into redis-server command-line arguments.
func args(d [][]string) []string {
	var out []string
	for _, l := range d {
		out = append(out, "--"+l[0])
		out = append(out, l[1:]...)
	}
	return out
}

// writeConf writes directives as a config file, which the server can
// rewrite (CONFIG REWRITE: what sentinels do after a failover) and reads
// again on restart.
func writeConf(t testing.TB, path string, d [][]string) {
	t.Helper()
	var b strings.Builder
	for _, l := range d {
		for i, a := range l {
			if i > 0 {
				b.WriteByte(' ')
			}
			if a == "" || strings.ContainsAny(a, " \t\"'\\") {
				a = strconv.Quote(a)
			}
			b.WriteString(a)
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
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
	st := newSettings(t, opts)
	bin := Binary(t)
	return startFresh(t, func() *Server {
		dir := t.TempDir()
		port := freePort(t)
		d := st.directives(port, dir)
		if st.cluster {
			d = append(d, []string{"cluster-enabled", "yes"}, []string{"cluster-config-file", filepath.Join(dir, "nodes.conf")})
		}
		return &Server{
			Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: st.password, Dir: dir, TLS: st.clientTLS(t), PKI: st.pki,
			t: t, args: append([]string{bin}, args(d)...),
		}
	})
}

// startFresh starts the server that build makes, on the free ports build
// picks; when another process took a port between freePort and redis-server's
// bind (an outgoing connection of the e2e bed's kube processes may get any
// ephemeral port), it builds the server again on new ports, up to 5 times.
// CI's e2e run lost a cluster node to "bind: Address already in use".
func startFresh(t testing.TB, build func() *Server) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := build()
		err := s.launch()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("%v", err)
		}
		t.Logf("%v; starting it again on other ports", err)
	}
}

// errPortTaken: redis-server exited because its port was in use.
var errPortTaken = errors.New("port taken by another process before redis-server bound it")

func (s *Server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatalf("%v", err)
	}
}

// launch starts redis-server and waits until it answers PING; errPortTaken
// when it exited because its port was in use.
func (s *Server) launch() error {
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)

	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			s.cmd = nil
			if strings.Contains(s.Log(), "Address already in use") {
				return fmt.Errorf("redis-server on %s: %w:\n%s", s.Addr, errPortTaken, s.Log())
			}
			return fmt.Errorf("redis-server on %s exited before answering: %v\n%s", s.Addr, err, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after 10s: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new client for the server, closed when the test ends.
// Its read and write timeouts are 30 s, not go-redis's 3 s: on a loaded
// machine a reply that is merely slow (a script moving megabytes) took
// longer than 3 s. A test that needs a reply to time out makes its own
// client with a short timeout.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr, Password: s.Password, TLSConfig: s.TLS, MaxRetries: -1,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	})
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

// Pause freezes the server (SIGSTOP): its connections stay open but nothing
// is answered or replicated until Resume. A paused replica models one that
// lags or is cut off from its master; Stop still kills it.
func (s *Server) Pause() {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("pause %s: not running", s.Addr)
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pause %s: %v", s.Addr, err)
	}
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("resume %s: not running", s.Addr)
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		s.t.Fatalf("resume %s: %v", s.Addr, err)
	}
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

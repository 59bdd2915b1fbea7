package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startNode starts one server of a topology from a config file in its own
// temp dir. Restart (after Stop or a SIGKILL) reads the file again, with
// whatever the server rewrote into it.
// It picks a free port (and extra may pick more, e.g. a cluster bus port);
// both are picked again when another process took one first (startFresh).
func startNode(t testing.TB, st *settings, extra func(dir string) [][]string, sentinel bool) *Server {
	t.Helper()
	return startFresh(t, func() *Server {
		port := freePort(t)
		dir := t.TempDir()
		var d [][]string
		if sentinel {
			d = st.sentinelDirectives(port, dir)
		} else {
			d = st.directives(port, dir)
		}
		if extra != nil {
			d = append(d, extra(dir)...)
		}
		conf := filepath.Join(dir, "redis.conf")
		writeConf(t, conf, d)
		a := []string{Binary(t), conf}
		pw := st.password
		if sentinel {
			a = append(a, "--sentinel")
			pw = st.sentinelPassword
		}
		return &Server{
			Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: pw, Dir: dir, TLS: st.clientTLS(t), PKI: st.pki,
			t: t, args: a,
		}
	})
}

// Running reports whether the server process is up (not Stopped).
func (s *Server) Running() bool { return s.cmd != nil }

// Do runs one command on the server as its default user and fails the test
// on an error.
func (s *Server) Do(args ...any) any {
	s.t.Helper()
	v, err := s.try(args...)
	if err != nil {
		s.t.Fatalf("%s: %v: %v", s.Addr, args, err)
	}
	return v
}

// try runs one command on a fresh RESP2 connection, bounded by 5 s.
func (s *Server) try(args ...any) (any, error) {
	var v any
	err := s.with(func(ctx context.Context, c *redis.Client) error {
		var err error
		v, err = c.Do(ctx, args...).Result()
		return err
	})
	return v, err
}

// with calls fn with a fresh single-connection RESP2 client of the
// server's default user, bounded by 5 s.
func (s *Server) with(fn func(context.Context, *redis.Client) error) error {
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr, Password: s.Password, TLSConfig: s.TLS, Protocol: 2,
		MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, PoolSize: 1,
		DisableIdentity: true,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return fn(ctx, c)
}

// infoField returns one field of INFO section, or "" when the server does
// not answer.
func (s *Server) infoField(section, field string) string {
	v, err := s.try("INFO", section)
	if err != nil {
		return ""
	}
	out, _ := v.(string)
	for _, line := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return val
		}
	}
	return ""
}

// waitFor polls cond every 50 ms until it returns "" (done) or timeout
// passes; then it fails the test with cond's last reason.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

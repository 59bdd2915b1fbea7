package redistest

import (
	"fmt"
	"syscall"
	"testing"
)

// A port taken between freePort and redis-server's bind (here: held by the
// test) makes startFresh build the server again on another port, instead of
// failing the test as CI's e2e run did ("bind: Address already in use").
func TestStartFreshPicksAnotherPortWhenItsPortIsTaken(t *testing.T) {
	// Bound, not listening: as the local port of an outgoing connection.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	taken := sa.(*syscall.SockaddrInet4).Port
	st := newSettings(t, nil)
	builds := 0
	s := startFresh(t, func() *Server {
		builds++
		port := taken // the first build loses the race
		if builds > 1 {
			port = freePort(t)
		}
		dir := t.TempDir()
		return &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, t: t,
			args: append([]string{Binary(t)}, args(st.directives(port, dir))...)}
	})
	if builds != 2 || s.Addr == fmt.Sprintf("127.0.0.1:%d", taken) {
		t.Fatalf("%d builds, server on %s (taken port %d): want 2 builds and another port", builds, s.Addr, taken)
	}
	if got := s.Do("PING"); got != "PONG" {
		t.Fatalf("PING = %v", got)
	}
}

package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Partition cuts the server off for clients that must (re)connect, as a
// network partition does: an iptables rule drops the SYNs sent to its port
// (a dial then times out, like a blackholed address), and CONFIG SET timeout
// 1 makes the server close every connection idle for a second, so clients
// soon have to dial again. Connections in constant use (a blocked
// BRPOPLPUSH) stay up. heal removes the rule (it is idempotent); the test's
// cleanup removes it in any case. The rule carries the comment
// redis-keda-test-<port>, so parallel tests never remove each other's.
//
// It needs root and iptables; without them the test is skipped.
func (s *Server) Partition(t testing.TB) (heal func()) {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not available: a partition needs it (CI runs as root with iptables)")
	}
	if out, err := exec.Command("iptables", "-w", "-S", "INPUT").CombinedOutput(); err != nil {
		t.Skipf("iptables unusable (root needed): %v: %s", err, out)
	}
	s.Do("CONFIG", "SET", "timeout", "1")
	port := s.Addr[strings.LastIndexByte(s.Addr, ':')+1:]
	spec := []string{"INPUT", "-p", "tcp", "--dport", port, "--tcp-flags", "SYN,ACK", "SYN",
		"-m", "comment", "--comment", "redis-keda-test-" + port, "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, spec...)...).CombinedOutput(); err != nil {
		t.Fatalf("partition %s: iptables: %v: %s", s.Addr, err, out)
	}
	var once sync.Once
	heal = func() {
		once.Do(func() {
			if out, err := exec.Command("iptables", append([]string{"-w", "-D"}, spec...)...).CombinedOutput(); err != nil {
				t.Errorf("heal partition %s: iptables: %v: %s", s.Addr, err, out)
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// Partitioned reports whether a Partition rule for the server's port is in
// place (a control for tests).
func (s *Server) Partitioned() (bool, error) {
	out, err := exec.CommandContext(context.Background(), "iptables", "-w", "-S", "INPUT").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("iptables -S: %v: %s", err, out)
	}
	port := s.Addr[strings.LastIndexByte(s.Addr, ':')+1:]
	return strings.Contains(string(out), "redis-keda-test-"+port+" "), nil
}

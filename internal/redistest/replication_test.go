package redistest

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// WaitReplicas returns only once the replica has what the master wrote:
// here the replica is paused (SIGSTOP) when the master takes the write and
// is resumed later, so a wait that looked at anything but the replica's
// own offsets — a fixed delay, the link status the master alone sees —
// would return without it.
func TestWaitReplicasWaitsForTheReplicasOffset(t *testing.T) {
	m, r := Start(t), Start(t)
	host, port, _ := net.SplitHostPort(m.Addr)
	r.Do("REPLICAOF", host, port)
	took := m.WaitReplicas(time.Minute, r)
	t.Logf("replica in sync after %s (a full sync)", took.Round(time.Millisecond))

	r.Pause()
	m.Do("SET", "k", "while paused")
	var resumed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second)
		resumed.Store(true)
		r.Resume()
	}()
	t.Cleanup(func() { <-done })
	took = m.WaitReplicas(time.Minute, r)
	if !resumed.Load() {
		t.Fatalf("WaitReplicas returned after %s while the replica was still paused", took)
	}
	if got := r.Do("GET", "k"); got != "while paused" {
		t.Fatalf("GET k on the replica = %v after WaitReplicas, want the master's write", got)
	}
	t.Logf("returned %s after the write, once the replica was resumed and had it", took.Round(time.Millisecond))
}

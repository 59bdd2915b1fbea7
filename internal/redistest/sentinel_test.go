package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestSentinelFailoverAndRestart(t *testing.T) {
	s := StartSentinel(t)
	t.Logf("master + 2 replicas + 3 sentinels ready in %s", s.Started.Round(time.Millisecond))

	old := s.Master()
	if old != s.Nodes[0] {
		t.Fatalf("first master is %s, want %s", old.Addr, s.Nodes[0].Addr)
	}
	replicas := s.Replicas()
	if len(replicas) != 2 {
		t.Fatalf("%d replicas, want 2", len(replicas))
	}
	old.Do("SET", "k", "v1")
	// Both replicas have it. (A WAIT here would prove nothing: Do runs
	// each command on a fresh connection, and WAIT counts only the writes
	// of its own.)
	took := old.WaitReplicas(failoverBound, replicas...)
	t.Logf("both replicas in sync %s after the write", took.Round(time.Millisecond))
	for _, r := range replicas {
		if got := r.Do("GET", "k"); got != "v1" {
			t.Fatalf("GET on replica %s = %v, want v1", r.Addr, got)
		}
	}

	killed := s.KillMaster()
	promoted, took := s.WaitFailover(killed, failoverBound)
	t.Logf("master SIGKILLed: sentinels promoted %s after %s (down-after %s, quorum 2 of 3)", promoted.Addr, took.Round(time.Millisecond), SentinelDownAfter)
	if !slices.Contains(replicas, promoted) {
		t.Fatalf("promoted %s, not one of the replicas", promoted.Addr)
	}
	if n := s.Failovers(); n != 1 {
		t.Errorf("Failovers() = %d after one failover", n)
	}
	if got := promoted.Do("GET", "k"); got != "v1" {
		t.Fatalf("GET on the new master = %v, want v1", got)
	}
	for _, r := range replicas {
		if r != promoted {
			took := s.WaitReplica(r, failoverBound)
			t.Logf("other replica %s follows the new master after %s more", r.Addr, took.Round(time.Millisecond))
		}
	}

	s.RestartAsReplica(killed)
	took = s.WaitReplica(killed, failoverBound)
	t.Logf("old master restarted as a replica, in sync after %s", took.Round(time.Millisecond))
	if got := killed.Do("GET", "k"); got != "v1" {
		t.Fatalf("GET on the restarted old master = %v, want v1 (synced from the new master)", got)
	}
}

// TLS only, passwords on the data nodes and the sentinels, ACL users on
// both; a failover runs over TLS too (sentinel to node, sentinel to
// sentinel, replication).
func TestSentinelTLSAndACL(t *testing.T) {
	s := StartSentinel(t, WithTLS(), WithPassword("admin-pw"), WithUser("app", "app-pw"),
		WithSentinelPassword("sentinel-admin-pw"), WithSentinelUser("app-sentinel", "app-sentinel-pw"))
	t.Logf("TLS sentinel set ready in %s", s.Started.Round(time.Millisecond))
	ctx := context.Background()

	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		SentinelUsername: "app-sentinel", SentinelPassword: "app-sentinel-pw",
		Username: "app", Password: "app-pw", TLSConfig: s.TLS,
	})
	defer fc.Close()
	if err := fc.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := s.Master().Do("GET", "k"); got != "v1" {
		t.Fatalf("GET on the master = %v", got)
	}
	s.Master().WaitReplicas(failoverBound, s.Replicas()...)

	noAuth := redis.NewClient(&redis.Options{Addr: s.Sentinels[0].Addr, TLSConfig: s.TLS, MaxRetries: -1, Protocol: 2})
	defer noAuth.Close()
	if err := noAuth.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("sentinel without a password: %v, want NOAUTH", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: s.Sentinels[0].Addr, Password: "sentinel-admin-pw", MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatalf("sentinel answered without TLS")
	}

	killed := s.KillMaster()
	promoted, took := s.WaitFailover(killed, failoverBound)
	t.Logf("TLS failover to %s in %s", promoted.Addr, took.Round(time.Millisecond))
	if got, err := fc.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET through the failover client after the failover = %q, %v", got, err)
	}
	if v := fmt.Sprint(promoted.Do("CONFIG", "GET", "tls-replication")); v != "[tls-replication yes]" {
		t.Fatal(v)
	}
}

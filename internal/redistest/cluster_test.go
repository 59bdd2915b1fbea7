package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// failoverBound is how long a test waits for a failover before failing. The
// measured times (logged) are far lower; the bound leaves room for a busy
// 2-core machine.
const failoverBound = 30 * time.Second

func TestClusterSlotsFailoverAndRestart(t *testing.T) {
	c := StartCluster(t)
	t.Logf("cluster of 6 created and healthy in %s", c.Created.Round(time.Millisecond))
	ctx := context.Background()

	// 3 masters, each with exactly one replica; the slot map covers 0-16383
	// with those 3 masters only.
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	for _, m := range masters {
		if r := c.ReplicaOf(m); len(r) != 1 {
			t.Errorf("master %s has %d replicas, want 1", m.Addr, len(r))
		}
	}
	m, err := masters[0].slotMap()
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	owners := map[string]bool{}
	for _, r := range m {
		covered += r.end - r.start + 1
		owners[r.master] = true
	}
	if covered != 16384 || len(owners) != 3 {
		t.Fatalf("slot map %s covers %d slots with %d masters, want 16384 and 3", m, covered, len(owners))
	}

	// A key written through the cluster is on the master MasterOf names,
	// and only there: another master answers MOVED to it.
	const key, val = "{events}:probe", "v1"
	cc := c.Client()
	if err := cc.Set(ctx, key, val, 0).Err(); err != nil {
		t.Fatal(err)
	}
	owner := c.MasterOf(key)
	if got := owner.Do("GET", key); got != val {
		t.Fatalf("GET %s on owner %s = %v, want %s", key, owner.Addr, got, val)
	}
	for _, other := range masters {
		if other == owner {
			continue
		}
		_, err := other.try("GET", key)
		want := fmt.Sprintf("MOVED %d %s", c.Slot(key), owner.Addr)
		if err == nil || err.Error() != want {
			t.Errorf("GET on %s: %v, want %s", other.Addr, err, want)
		}
	}

	// CLUSTER FAILOVER on the owner's replica swaps them without loss.
	replica := c.ReplicaOf(owner)[0]
	took := c.Failover(replica, failoverBound)
	t.Logf("CLUSTER FAILOVER: replica %s promoted in %s", replica.Addr, took.Round(time.Millisecond))
	if got := c.MasterOf(key); got != replica {
		t.Fatalf("after CLUSTER FAILOVER the slot is on %s, want %s", got.Addr, replica.Addr)
	}
	if got := replica.Do("GET", key); got != val {
		t.Fatalf("GET on the promoted replica = %v, want %s", got, val)
	}
	if r := c.ReplicaOf(replica); len(r) != 1 || r[0] != owner {
		t.Fatalf("the old master is not the new master's replica: %v", r)
	}

	// SIGKILL the master: its replica takes over on its own.
	owner = replica
	replica = c.ReplicaOf(owner)[0]
	owner.WaitReplicas(failoverBound, replica) // the replica has the key
	owner.Stop()
	promoted, took := c.WaitNewMaster(key, owner, failoverBound)
	t.Logf("master SIGKILLed: replica %s serves the slot after %s (cluster-node-timeout %s)", promoted.Addr, took.Round(time.Millisecond), ClusterNodeTimeout)
	if promoted != replica {
		t.Fatalf("slot moved to %s, want the replica %s", promoted.Addr, replica.Addr)
	}
	if got, err := cc.Get(ctx, key).Result(); err != nil || got != val {
		t.Fatalf("GET through the cluster client after the failover = %q, %v; want %s", got, err, val)
	}

	// The killed node comes back as the new master's replica.
	owner.Restart()
	took = c.WaitHealthy(failoverBound)
	if r := c.ReplicaOf(promoted); len(r) != 1 || r[0] != owner {
		t.Fatalf("restarted node is not the new master's replica: %v", r)
	}
	t.Logf("restarted node rejoined as a replica in %s", took.Round(time.Millisecond))
}

// TLS only, the default user behind a password, an ACL user: redis-cli
// creates the cluster over TLS and the bus and replication run on TLS.
func TestClusterTLSAndACL(t *testing.T) {
	c := StartCluster(t, WithTLS(), WithPassword("admin-pw"), WithUser("app", "app-pw", "~{events}*", "+@all"))
	t.Logf("TLS cluster created and healthy in %s", c.Created.Round(time.Millisecond))
	ctx := context.Background()
	for _, n := range c.Nodes {
		if v := n.Do("CONFIG", "GET", "tls-cluster"); fmt.Sprint(v) != "[tls-cluster yes]" {
			t.Fatalf("%s: %v", n.Addr, v)
		}
	}

	app := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()[:1], Username: "app", Password: "app-pw", TLSConfig: c.TLS})
	defer app.Close()
	if err := app.LPush(ctx, "{events}", "e1").Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.MasterOf("{events}").Do("LRANGE", "{events}", 0, -1); fmt.Sprint(got) != "[e1]" {
		t.Fatalf("LRANGE on the owner = %v", got)
	}
	// The user's key pattern holds.
	if err := app.Set(ctx, "other", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("SET outside ~{events}*: %v, want NOPERM", err)
	}

	// Without the password, or without TLS, nothing works.
	noAuth := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr, TLSConfig: c.TLS, MaxRetries: -1})
	defer noAuth.Close()
	if err := noAuth.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("PING without a password: %v, want NOAUTH", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr, Password: "admin-pw", MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING without TLS answered")
	}
}

package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is cluster-node-timeout of StartCluster's nodes: a
// master unreachable this long is failing, and its replica takes over soon
// after.
const ClusterNodeTimeout = time.Second

// manualFailoverTimeout is Redis's CLUSTER_MF_TIMEOUT (cluster.h, fixed at
// 5 s): a CLUSTER FAILOVER not done by then is aborted.
const manualFailoverTimeout = 5 * time.Second

// Cluster is a Redis Cluster of 3 masters and 3 replicas (redis-cli
// --cluster create --cluster-replicas 1) on loopback, stopped (SIGKILL) when
// the test ends.
type Cluster struct {
	// Nodes are the six servers; which are masters changes with failovers
	// (see MasterOf, Masters, ReplicaOf).
	Nodes    []*Server
	Password string      // the default user's, on every node ("" = none)
	TLS      *tls.Config // nil, or a client configuration trusting PKI
	PKI      *PKI        // nil without WithTLS
	// Created is how long the start took: six servers up, redis-cli
	// --cluster create, and every slot served with replicas in sync.
	Created time.Duration

	t testing.TB
}

// StartCluster starts six cluster-enabled servers on free loopback ports
// (client and bus ports both chosen free), joins them with redis-cli
// --cluster create and waits until cluster_state is ok on every node, all
// 16384 slots are served, every node has the same slot map and every
// replica is in sync. Options: WithPassword, WithUser, WithTLS, WithAOF.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	begin := time.Now()
	st := newSettings(t, opts)
	c := &Cluster{Password: st.password, TLS: st.clientTLS(t), PKI: st.pki, t: t}
	for range 6 {
		c.Nodes = append(c.Nodes, startNode(t, st, func(dir string) [][]string {
			bus := freePort(t)
			d := [][]string{
				{"cluster-enabled", "yes"},
				{"cluster-config-file", filepath.Join(dir, "nodes.conf")},
				{"cluster-port", strconv.Itoa(bus)},
				{"cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds()))},
				{"cluster-replica-validity-factor", "0"},  // a replica may always take over
				{"cluster-allow-replica-migration", "no"}, // replicas stay where they are
				{"cluster-replica-no-failover", "no"},
			}
			if st.pki != nil {
				d = append(d, []string{"tls-cluster", "yes"})
			}
			return d
		}, false))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found on PATH: install it (Debian: apt-get install -y redis-tools); the cluster tests create a real Redis Cluster")
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	args = append(args, c.cliAuth()...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(time.Minute)
	c.Created = time.Since(begin)
	return c
}

// cliAuth is redis-cli's flags for the default user and TLS.
func (c *Cluster) cliAuth() []string {
	var a []string
	if c.Password != "" {
		a = append(a, "-a", c.Password, "--no-auth-warning")
	}
	if c.PKI != nil {
		a = append(a, "--tls", "--cacert", c.PKI.CAFile)
	}
	return a
}

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Client returns a cluster client of the default user on all nodes, closed
// when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.Password, TLSConfig: c.TLS})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Node returns the node serving addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func (c *Cluster) running() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Slot returns the hash slot of key (CLUSTER KEYSLOT on a running node).
func (c *Cluster) Slot(key string) int {
	c.t.Helper()
	r := c.running()
	if len(r) == 0 {
		c.t.Fatalf("no cluster node is running")
	}
	n, ok := r[0].Do("CLUSTER", "KEYSLOT", key).(int64)
	if !ok {
		c.t.Fatalf("CLUSTER KEYSLOT %q: not an integer", key)
	}
	return int(n)
}

// slotRange is a range of slots and the address of its master.
type slotRange struct {
	start, end int
	master     string
}

// slotMap is one node's view of the cluster (CLUSTER SHARDS).
type slotMap []slotRange

func (m slotMap) master(slot int) string {
	for _, r := range m {
		if slot >= r.start && slot <= r.end {
			return r.master
		}
	}
	return ""
}

func (m slotMap) String() string {
	parts := make([]string, len(m))
	for i, r := range m {
		parts[i] = fmt.Sprintf("%d-%d@%s", r.start, r.end, r.master)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func (s *Server) slotMap() (slotMap, error) {
	var shards []redis.ClusterShard
	err := s.with(func(ctx context.Context, cl *redis.Client) error {
		var err error
		shards, err = cl.ClusterShards(ctx).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	var m slotMap
	for _, sh := range shards {
		master := ""
		for _, n := range sh.Nodes {
			if n.Role == "master" {
				port := n.Port
				if n.TLSPort != 0 { // a TLS-only node
					port = n.TLSPort
				}
				master = net.JoinHostPort(n.IP, strconv.FormatInt(port, 10))
			}
		}
		for _, r := range sh.Slots {
			m = append(m, slotRange{int(r.Start), int(r.End), master})
		}
	}
	return m, nil
}

// health returns "" when every running node says cluster_state:ok with all
// slots served, they all share one slot map whose masters are running, and
// every running replica is in sync; else what is wrong. It also returns
// the shared map.
func (c *Cluster) health() (slotMap, string) {
	var shared slotMap
	for _, n := range c.running() {
		info, err := n.try("CLUSTER", "INFO")
		if err != nil {
			return nil, fmt.Sprintf("%s: CLUSTER INFO: %v", n.Addr, err)
		}
		s, _ := info.(string)
		if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_slots_ok:16384") {
			f := strings.Fields(s)
			return nil, fmt.Sprintf("%s: %s", n.Addr, strings.Join(f[:min(4, len(f))], " "))
		}
		m, err := n.slotMap()
		if err != nil {
			return nil, fmt.Sprintf("%s: CLUSTER SLOTS: %v", n.Addr, err)
		}
		if shared == nil {
			shared = m
		} else if m.String() != shared.String() {
			return nil, fmt.Sprintf("slot maps differ: %s has %s, another node %s", n.Addr, m, shared)
		}
		if role := n.infoField("replication", "role"); role == "slave" {
			if st := n.infoField("replication", "master_link_status"); st != "up" {
				return nil, fmt.Sprintf("replica %s: master_link_status:%s", n.Addr, st)
			}
		}
	}
	for _, r := range shared {
		if n := c.Node(r.master); n == nil || !n.Running() {
			return nil, fmt.Sprintf("slots %d-%d: master %q is not running", r.start, r.end, r.master)
		}
	}
	return shared, ""
}

// WaitHealthy waits until the running nodes agree on a healthy cluster (see
// StartCluster) and every running node that serves no slots is an in-sync
// replica of a master that does (see Server.WaitReplicas: after a restart
// the old master first turns into a replica, then makes a full resync). It
// returns how long that took.
func (c *Cluster) WaitHealthy(timeout time.Duration) time.Duration {
	c.t.Helper()
	checks := map[string]*syncCheck{} // by master address
	return waitFor(c.t, timeout, "cluster healthy, replicas in sync", func() string {
		m, why := c.health()
		if why != "" {
			return why
		}
		return c.replicasInSync(m, checks)
	})
}

// replicasInSync returns "" when every running node that is no master in m
// follows one of m's masters and has caught up with it (syncCheck), else
// what is wrong.
func (c *Cluster) replicasInSync(m slotMap, checks map[string]*syncCheck) string {
	masters := map[string]bool{}
	for _, r := range m {
		masters[r.master] = true
	}
	byMaster := map[string][]*Server{}
	for _, n := range c.running() {
		if masters[n.Addr] {
			continue
		}
		ri, err := n.replInfo()
		if err != nil {
			return fmt.Sprintf("%s: INFO replication: %v", n.Addr, err)
		}
		follows := net.JoinHostPort(ri.fields["master_host"], ri.fields["master_port"])
		if ri.fields["role"] != "slave" || !masters[follows] {
			return fmt.Sprintf("%s serves no slots and is not a replica of a master that does (role:%s master %s)", n.Addr, ri.fields["role"], follows)
		}
		byMaster[follows] = append(byMaster[follows], n)
	}
	for addr, replicas := range byMaster {
		if checks[addr] == nil {
			checks[addr] = &syncCheck{}
		}
		if why := checks[addr].poll(c.Node(addr), replicas); why != "" {
			return why
		}
	}
	return ""
}

// MasterOf returns the master serving key's slot, once the cluster is
// healthy.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	slot := c.Slot(key)
	var m slotMap
	waitFor(c.t, 30*time.Second, "cluster healthy", func() string {
		var why string
		m, why = c.health()
		return why
	})
	return c.Node(m.master(slot))
}

// Masters returns the running nodes whose role is master.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, n := range c.running() {
		if n.infoField("replication", "role") == "master" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaOf returns the running replicas of master (INFO replication).
func (c *Cluster) ReplicaOf(master *Server) []*Server {
	var out []*Server
	_, port, _ := strings.Cut(master.Addr, ":")
	for _, n := range c.running() {
		if n.infoField("replication", "role") == "slave" && n.infoField("replication", "master_port") == port {
			out = append(out, n)
		}
	}
	return out
}

// Failover runs CLUSTER FAILOVER on replica (a coordinated, lossless
// switch with its master) and waits until the replica is a master and the
// cluster healthy. It returns how long that took.
func (c *Cluster) Failover(replica *Server, timeout time.Duration) time.Duration {
	c.t.Helper()
	begin := time.Now()
	// A manual failover that does not complete within cluster-mf-timeout
	// (the master paused, the replica catching up its offset) is aborted by
	// Redis without a word: the replica stays a replica. On a loaded
	// machine that happens; ask again, so the bound is the caller's
	// timeout and not Redis's manual-failover window.
	var asked time.Time
	waitFor(c.t, timeout, "replica "+replica.Addr+" promoted", func() string {
		if role := replica.infoField("replication", "role"); role != "master" {
			if asked.IsZero() || time.Since(asked) > 2*manualFailoverTimeout {
				if v := replica.Do("CLUSTER", "FAILOVER"); v != "OK" {
					c.t.Fatalf("CLUSTER FAILOVER on %s: %v", replica.Addr, v)
				}
				asked = time.Now()
			}
			return "role:" + role
		}
		_, why := c.health()
		return why
	})
	return time.Since(begin)
}

// WaitNewMaster waits until a running node other than old serves key's
// slot, as every running node sees it, and the cluster is healthy (after
// old was killed, or a failover). It returns the new master and how long
// the wait took.
func (c *Cluster) WaitNewMaster(key string, old *Server, timeout time.Duration) (*Server, time.Duration) {
	c.t.Helper()
	slot := c.Slot(key)
	var m slotMap
	took := waitFor(c.t, timeout, "a new master for "+key, func() string {
		var why string
		if m, why = c.health(); why != "" {
			return why
		}
		if m.master(slot) == old.Addr {
			return fmt.Sprintf("slot %d still on %s", slot, old.Addr)
		}
		return ""
	})
	return c.Node(m.master(slot)), took
}

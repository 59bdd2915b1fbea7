package redistest

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel timings of StartSentinel: a master unreachable for
// SentinelDownAfter is subjectively down; with the quorum (2 of 3) it is
// failed over. SentinelFailoverTimeout bounds one failover attempt (and
// delays a retry to twice that). SentinelDownAfter is 2 s, not less: on a
// loaded 2-core machine a master that is alive can miss the sentinels'
// PINGs for a second, and the failover they then start is one the test did
// not ask for (see Failovers).
const (
	SentinelMasterName      = "mymaster"
	SentinelDownAfter       = 2 * time.Second
	SentinelFailoverTimeout = 5 * time.Second
)

// Sentinel is a master with two replicas watched by three sentinels (quorum
// 2), on loopback, stopped (SIGKILL) when the test ends.
type Sentinel struct {
	MasterName string
	// Nodes are the data nodes; Nodes[0] is the first master. Which one is
	// master changes with failovers (see Master).
	Nodes     []*Server
	Sentinels []*Server
	// Password is the data nodes' default user's ("" = none);
	// SentinelPassword the sentinels' (WithSentinelPassword).
	Password, SentinelPassword string
	TLS                        *tls.Config // nil, or a client configuration trusting PKI
	PKI                        *PKI        // nil without WithTLS
	// Started is how long the start took: everything up, replicas in sync,
	// every sentinel aware of both replicas and both other sentinels.
	Started time.Duration

	t testing.TB
}

// sentinelDirectives is the configuration of a sentinel on port in dir,
// before its monitor lines.
func (st *settings) sentinelDirectives(port int, dir string) [][]string {
	d := [][]string{
		{"bind", "127.0.0.1"}, {"dir", dir}, {"daemonize", "no"},
		{"logfile", filepath.Join(dir, "redis.log")},
	}
	d = append(d, st.listen(port)...) // tls-replication: TLS to the nodes and the other sentinels
	if st.sentinelPassword != "" {
		d = append(d, []string{"requirepass", st.sentinelPassword}, []string{"sentinel", "sentinel-pass", st.sentinelPassword})
	}
	for _, u := range st.sentinelUsers {
		d = append(d, u.directive())
	}
	return d
}

// StartSentinel starts a master, two replicas of it and three sentinels
// monitoring it as SentinelMasterName, with quorum 2, SentinelDownAfter and
// SentinelFailoverTimeout. Options: WithPassword, WithUser, WithTLS,
// WithAOF (data nodes), WithSentinelPassword, WithSentinelUser.
func StartSentinel(t testing.TB, opts ...Option) *Sentinel {
	t.Helper()
	begin := time.Now()
	st := newSettings(t, opts)
	s := &Sentinel{
		MasterName: SentinelMasterName, Password: st.password, SentinelPassword: st.sentinelPassword,
		TLS: st.clientTLS(t), PKI: st.pki, t: t,
	}
	master := startNode(t, st, nil, false)
	s.Nodes = append(s.Nodes, master)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	for range 2 {
		s.Nodes = append(s.Nodes, startNode(t, st, func(string) [][]string {
			return [][]string{{"replicaof", mhost, mport}}
		}, false))
	}
	var sync syncCheck
	waitFor(t, time.Minute, "replicas in sync", func() string { return sync.poll(master, s.Nodes[1:]) })
	for range 3 {
		s.Sentinels = append(s.Sentinels, startNode(t, st, func(string) [][]string {
			m := s.MasterName
			d := [][]string{
				{"sentinel", "monitor", m, mhost, mport, "2"},
				{"sentinel", "down-after-milliseconds", m, strconv.Itoa(int(SentinelDownAfter.Milliseconds()))},
				{"sentinel", "failover-timeout", m, strconv.Itoa(int(SentinelFailoverTimeout.Milliseconds()))},
				{"sentinel", "parallel-syncs", m, "1"},
			}
			if st.password != "" {
				d = append(d, []string{"sentinel", "auth-pass", m, st.password})
			}
			return d
		}, true))
	}
	waitFor(t, time.Minute, "sentinels aware of each other and of the replicas", func() string {
		for _, sn := range s.Sentinels {
			v, err := sn.try("SENTINEL", "MASTER", s.MasterName)
			if err != nil {
				return fmt.Sprintf("%s: %v", sn.Addr, err)
			}
			f := fields(v)
			if f["num-slaves"] != "2" || f["num-other-sentinels"] != "2" || f["flags"] != "master" {
				return fmt.Sprintf("sentinel %s: flags=%s num-slaves=%s num-other-sentinels=%s", sn.Addr, f["flags"], f["num-slaves"], f["num-other-sentinels"])
			}
		}
		return ""
	})
	s.Started = time.Since(begin)
	return s
}

// fields turns a flat RESP2 key/value array into a map.
func fields(v any) map[string]string {
	out := map[string]string{}
	a, _ := v.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		out[fmt.Sprint(a[i])] = fmt.Sprint(a[i+1])
	}
	return out
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// node returns the data node serving addr, or nil.
func (s *Sentinel) node(addr string) *Server {
	for _, n := range s.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// masterView returns the master every running sentinel reports, when they
// agree and that node runs as a master; else "" and what is wrong.
func (s *Sentinel) masterView() (*Server, string) {
	var addr string
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		v, err := sn.try("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil {
			return nil, fmt.Sprintf("sentinel %s: %v", sn.Addr, err)
		}
		a, _ := v.([]any)
		if len(a) != 2 {
			return nil, fmt.Sprintf("sentinel %s: master %v", sn.Addr, v)
		}
		got := net.JoinHostPort(fmt.Sprint(a[0]), fmt.Sprint(a[1]))
		if addr != "" && got != addr {
			return nil, fmt.Sprintf("sentinels disagree: %s and %s", addr, got)
		}
		addr = got
	}
	n := s.node(addr)
	if n == nil {
		return nil, fmt.Sprintf("sentinels report %q, not a data node", addr)
	}
	if !n.Running() {
		return nil, fmt.Sprintf("sentinels report %s, which is not running", addr)
	}
	if role := n.infoField("replication", "role"); role != "master" {
		return nil, fmt.Sprintf("sentinels report %s, whose role is %q", addr, role)
	}
	return n, ""
}

// Master returns the current master, as all running sentinels report it.
func (s *Sentinel) Master() *Server {
	s.t.Helper()
	var m *Server
	waitFor(s.t, 30*time.Second, "sentinels agree on a running master", func() string {
		var why string
		m, why = s.masterView()
		return why
	})
	return m
}

// KillMaster SIGKILLs the current master and returns it.
func (s *Sentinel) KillMaster() *Server {
	s.t.Helper()
	m := s.Master()
	m.Stop()
	return m
}

// WaitFailover waits until every running sentinel reports a master other
// than old, and that node runs as master. It returns the new master and how
// long the wait took.
func (s *Sentinel) WaitFailover(old *Server, timeout time.Duration) (*Server, time.Duration) {
	s.t.Helper()
	var m *Server
	took := waitFor(s.t, timeout, "failover away from "+old.Addr, func() string {
		var why string
		if m, why = s.masterView(); why != "" {
			return why
		}
		if m == old {
			return "sentinels still report " + old.Addr
		}
		return ""
	})
	return m, took
}

// WaitReplica waits until n is an in-sync replica of the current master
// (see Server.WaitReplicas; a restarted old master is turned into one by
// the sentinels, then makes a full resync). It returns how long that took.
func (s *Sentinel) WaitReplica(n *Server, timeout time.Duration) time.Duration {
	s.t.Helper()
	var c syncCheck
	return waitFor(s.t, timeout, n.Addr+" in-sync replica of the master", func() string {
		m, why := s.masterView()
		if why != "" {
			return why
		}
		return c.poll(m, []*Server{n})
	})
}

// Failovers counts the failovers the sentinels have carried out so far
// (+switch-master in their logs; the most any running sentinel logged).
func (s *Sentinel) Failovers() int {
	n := 0
	for _, sn := range s.Sentinels {
		n = max(n, strings.Count(sn.Log(), "+switch-master "))
	}
	return n
}

// WaitSettled waits until every running data node other than the master
// is an in-sync replica of it (see Server.WaitReplicas), as all running
// sentinels report the master (after a failover, a restart, a resumed
// replica; it follows a further failover the sentinels start meanwhile).
// It returns how long that took.
func (s *Sentinel) WaitSettled(timeout time.Duration) time.Duration {
	s.t.Helper()
	var c syncCheck
	return waitFor(s.t, timeout, "every running data node an in-sync replica of the master", func() string {
		m, why := s.masterView()
		if why != "" {
			return why
		}
		var replicas []*Server
		for _, n := range s.Nodes {
			if n != m && n.Running() {
				replicas = append(replicas, n)
			}
		}
		return c.poll(m, replicas)
	})
}

// RestartAsReplica starts the stopped data node n again as a replica of the
// current master, as a production start script does (it asks the sentinels
// first). A plain n.Restart() also ends as a replica, but only once the
// sentinels notice and convert it: 10-20 s.
func (s *Sentinel) RestartAsReplica(n *Server) {
	s.t.Helper()
	m := s.Master()
	host, port, _ := net.SplitHostPort(m.Addr)
	conf := filepath.Join(n.Dir, "redis.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatalf("open %s: %v", conf, err)
	}
	_, err = fmt.Fprintf(f, "\nreplicaof %s %s\n", host, port)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.t.Fatalf("write %s: %v", conf, err)
	}
	n.Restart()
}

// Replicas returns the running data nodes that are not the master.
func (s *Sentinel) Replicas() []*Server {
	s.t.Helper()
	m := s.Master()
	var out []*Server
	for _, n := range s.Nodes {
		if n != m && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// String names the topology's addresses, for test logs.
func (s *Sentinel) String() string {
	return fmt.Sprintf("nodes %s, sentinels %s", addrs(s.Nodes), strings.Join(s.SentinelAddrs(), ","))
}

func addrs(ns []*Server) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Addr
	}
	return strings.Join(out, ",")
}

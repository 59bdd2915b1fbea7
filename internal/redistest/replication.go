package redistest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// replInfo is a server's INFO replication, parsed: its fields, and (on a
// master) the replicas it lists (slaveN lines), by address.
type replInfo struct {
	fields   map[string]string
	replicas map[string]replicaLine
}

// replicaLine is one slaveN line of a master's INFO replication: the
// replica's state there (online once it streams commands) and the offset
// it last acknowledged (REPLCONF ACK: what WAIT counts).
type replicaLine struct {
	state  string
	offset int64
}

// replInfo runs INFO replication and INFO stats (the sync counters) on the
// server.
func (s *Server) replInfo() (replInfo, error) {
	v, err := s.try("INFO", "replication", "stats")
	if err != nil {
		return replInfo{}, err
	}
	out, _ := v.(string)
	ri := replInfo{fields: map[string]string{}, replicas: map[string]replicaLine{}}
	for _, line := range strings.Split(out, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		ri.fields[k] = val
		if n, ok := strings.CutPrefix(k, "slave"); !ok || n == "" || strings.Trim(n, "0123456789") != "" {
			continue // not a slaveN line
		}
		// slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0
		f := map[string]string{}
		for _, kv := range strings.Split(val, ",") {
			if a, b, ok := strings.Cut(kv, "="); ok {
				f[a] = b
			}
		}
		off, _ := strconv.ParseInt(f["offset"], 10, 64)
		ri.replicas[net.JoinHostPort(f["ip"], f["port"])] = replicaLine{state: f["state"], offset: off}
	}
	return ri, nil
}

// offset returns an integer field of INFO replication, or -1.
func (ri replInfo) offset(field string) int64 {
	n, err := strconv.ParseInt(ri.fields[field], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// syncCheck decides, over repeated polls, whether a master's replicas are
// in sync with it: a WAIT on the master for them would succeed at once.
//
// Link status and offsets alone do not say that. After a full resync the
// replica reports master_link_status:up and the master lists it as
// state=online with the replica's offset, yet the master sends it nothing
// until it hears a REPLCONF ACK after the transfer — and the replica's
// first ACK can arrive just before the master has noticed the transfer
// ended, so the stream starts only with the replica's next periodic ACK,
// up to a second later (Redis 7.0, measured here: a WAIT 1 of 500 ms
// counted 0 replicas in that window). So the check takes the master's
// replication offset once every replica is up and online (the target),
// and waits until each replica has applied and acknowledged something the
// master wrote after it: then the stream flows. Something is always
// written: the master PINGs its replicas every repl-ping-replica-period
// (1 s here, see directives), and sentinels publish hellos. A resync
// (the master's sync_full or sync_partial_ok changes) starts over.
type syncCheck struct {
	master *Server
	target int64
	syncs  string // sync_full/sync_partial_ok of the master when target was taken
}

// poll returns "" when every replica in replicas follows master with its
// link up, the master lists it as online, and both the offset it applied
// (slave_repl_offset) and the one the master last heard it acknowledge are
// past the target; else the state it observed.
func (c *syncCheck) poll(master *Server, replicas []*Server) string {
	if c.master != master {
		c.master, c.target = master, -1
	}
	applied := make([]int64, len(replicas))
	for i, r := range replicas {
		ri, err := r.replInfo()
		if err != nil {
			c.target = -1
			return fmt.Sprintf("replica %s: INFO: %v", r.Addr, err)
		}
		f := ri.fields
		follows := net.JoinHostPort(f["master_host"], f["master_port"])
		if f["role"] != "slave" || follows != master.Addr || f["master_link_status"] != "up" {
			c.target = -1
			return fmt.Sprintf("%s: role:%s master %s master_link_status:%s master_sync_in_progress:%s; want a replica of %s with its link up",
				r.Addr, f["role"], follows, f["master_link_status"], f["master_sync_in_progress"], master.Addr)
		}
		applied[i] = ri.offset("slave_repl_offset")
	}
	mi, err := master.replInfo()
	if err != nil {
		return fmt.Sprintf("master %s: INFO: %v", master.Addr, err)
	}
	if role := mi.fields["role"]; role != "master" {
		c.target = -1
		return fmt.Sprintf("%s: role:%s, want master", master.Addr, role)
	}
	now := mi.offset("master_repl_offset")
	for _, r := range replicas {
		if line, ok := mi.replicas[r.Addr]; !ok || line.state != "online" {
			c.target = -1
			return fmt.Sprintf("master %s (master_repl_offset %d, connected_slaves:%s) lists replica %s as %q",
				master.Addr, now, mi.fields["connected_slaves"], r.Addr, line.state)
		}
	}
	syncs := mi.fields["sync_full"] + "/" + mi.fields["sync_partial_ok"]
	if c.target < 0 || syncs != c.syncs {
		c.target, c.syncs = now, syncs
		return fmt.Sprintf("every replica up and online at %s (offset %d, syncs full/partial %s): waiting for them to apply and acknowledge what the master writes next",
			master.Addr, now, syncs)
	}
	for i, r := range replicas {
		if line := mi.replicas[r.Addr]; line.offset <= c.target || applied[i] <= c.target {
			return fmt.Sprintf("replica %s: applied offset %d, acknowledged %d; master %s at %d, waiting for both past %d",
				r.Addr, applied[i], line.offset, master.Addr, now, c.target)
		}
	}
	return ""
}

// WaitReplicas waits until each of replicas is an in-sync replica of s:
// it follows s with its link up (master_link_status:up), s lists it as
// online, and it has applied and acknowledged what s wrote after that (see
// syncCheck). Then everything written before is on them, and a WAIT for
// them on s succeeds at once. A node that rejoins after a failover makes a
// full resync first; a fixed delay races it. It returns how long the wait
// took; after timeout it fails the test with the state it last observed.
func (s *Server) WaitReplicas(timeout time.Duration, replicas ...*Server) time.Duration {
	s.t.Helper()
	var c syncCheck
	return waitFor(s.t, timeout, fmt.Sprintf("%d replica(s) in sync with %s", len(replicas), s.Addr), func() string {
		return c.poll(s, replicas)
	})
}

// ReplicationOffset returns the server's INFO replication fields
// master_replid and master_repl_offset (on a replica: of its master's
// stream, as far as it got), failing the test if it does not answer.
func (s *Server) ReplicationOffset() (replid string, offset int64) {
	s.t.Helper()
	ri, err := s.replInfo()
	if err != nil {
		s.t.Fatalf("%s: INFO replication: %v", s.Addr, err)
	}
	return ri.fields["master_replid"], ri.offset("master_repl_offset")
}

// PromotedAt tells where a promoted replica's history left its old
// master's: a replica turned master keeps the old replication id as
// master_replid2, valid up to second_repl_offset-1 — the last offset of the
// old master's stream it received. ok is false when the server was not
// promoted from a replica of replid.
func (s *Server) PromotedAt(replid string) (last int64, ok bool) {
	s.t.Helper()
	ri, err := s.replInfo()
	if err != nil {
		s.t.Fatalf("%s: INFO replication: %v", s.Addr, err)
	}
	if ri.fields["role"] != "master" || ri.fields["master_replid2"] != replid {
		return 0, false
	}
	return ri.offset("second_repl_offset") - 1, true
}

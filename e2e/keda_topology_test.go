//go:build e2e

package e2e_test

// The real KEDA operator scales a ScaledJob from a Redis Cluster (3 masters
// + 3 replicas) and from a Sentinel-managed Redis (master + 2 replicas + 3
// sentinels), deployed from the example overlays k8s/overlays/redis-cluster
// and k8s/overlays/redis-sentinel with only the test bed's differences on
// top (addresses, no TLS, the bed's timings). Every server runs with the
// default user behind a password and the ACL users k8s/README.md documents
// (base users plus the cluster and sentinel lines): KEDA's redis-cluster /
// redis-sentinel trigger logs in as the keda user (and the sentinels'
// user), the jobs and the publisher as the application user. Required: one
// Job per event, and no denied command in any server's ACL LOG.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
)

const topologyEvents = 10

// topologyRun is one replicated Redis deployed from an example overlay.
type topologyRun struct {
	overlay string // k8s/overlays/<overlay>
	ns      string
	mode    queue.RedisMode
	// start starts the topology with the documented users and returns the
	// REDIS_* settings that differ on the bed, the servers whose ACL LOG
	// must stay empty, and the Secret's extra keys.
	start func(t *testing.T, pw map[string]string) (settings map[string]string, servers []*redistest.Server, secret map[string]string)
}

func testTopologies(ctx context.Context, t *testing.T, shared *bed) {
	// The example overlays pass a server-side dry run as they are.
	for _, n := range []string{"redis-keda"} {
		if _, err := shared.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"../k8s/overlays/redis-cluster", "../k8s/overlays/redis-sentinel"} {
		out, err := shared.c.Kubectl(ctx, "apply", "--server-side", "--dry-run=server", "-k", dir)
		if err != nil {
			t.Fatalf("server-side dry run of %s: %v\n%s", dir, err, out)
		}
		if !strings.Contains(out, "scaledjob.keda.sh/redis-keda-jobs") || !strings.Contains(out, "triggerauthentication.keda.sh/redis-keda-redis") {
			t.Errorf("dry run of %s lacks the ScaledJob or the TriggerAuthentication:\n%s", dir, out)
		}
	}

	runs := []topologyRun{
		{overlay: "redis-cluster", ns: "redis-keda-cluster", mode: queue.ModeCluster,
			start: func(t *testing.T, pw map[string]string) (map[string]string, []*redistest.Server, map[string]string) {
				c := redistest.StartCluster(t, redistest.WithPassword(pw["ADMIN_PASSWORD"]))
				applyACLs(t, pw, c.Nodes, nil)
				t.Logf("Redis Cluster of 6 created in %s", c.Created.Round(time.Millisecond))
				return map[string]string{"REDIS_ADDR": strings.Join(c.Addrs(), ",")}, c.Nodes, nil
			}},
		{overlay: "redis-sentinel", ns: "redis-keda-sentinel", mode: queue.ModeSentinel,
			start: func(t *testing.T, pw map[string]string) (map[string]string, []*redistest.Server, map[string]string) {
				s := redistest.StartSentinel(t, redistest.WithPassword(pw["ADMIN_PASSWORD"]), redistest.WithSentinelPassword(pw["ADMIN_PASSWORD"]))
				applyACLs(t, pw, s.Nodes, s.Sentinels)
				t.Logf("master + 2 replicas + 3 sentinels ready in %s", s.Started.Round(time.Millisecond))
				return map[string]string{"REDIS_ADDR": strings.Join(s.SentinelAddrs(), ","), "REDIS_SENTINEL_MASTER": s.MasterName},
					append(slices.Clone(s.Nodes), s.Sentinels...), map[string]string{"sentinel-password": pw["SENTINEL_PASSWORD"]}
			}},
	}
	for _, run := range runs {
		t.Run(run.overlay, func(t *testing.T) {
			t.Parallel()
			testTopology(ctx, t, shared, run)
		})
	}
}

func testTopology(ctx context.Context, t *testing.T, shared *bed, run topologyRun) {
	start := time.Now()
	pw := map[string]string{"ADMIN_PASSWORD": randomSecret(t), "APP_PASSWORD": randomSecret(t), "KEDA_PASSWORD": randomSecret(t), "SENTINEL_PASSWORD": randomSecret(t)}
	settings, servers, secretExtra := run.start(t, pw)
	users := readmeACL(t)

	// The overlays' out-of-band Secrets.
	kube := shared.kube
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: run.ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	secret := map[string]string{"password": pw["APP_PASSWORD"], "keda-username": users["keda"][0], "keda-password": pw["KEDA_PASSWORD"]}
	for k, v := range secretExtra {
		secret[k] = v
	}
	for name, data := range map[string]map[string]string{
		"redis-keda-redis": secret,
		// redis-tls-ca's CA; TLS is off on the bed, KEDA and the jobs do not read it.
		"redis-keda-redis-ca": {"ca.crt": "unused: TLS is off on the test bed"},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: run.ns}, StringData: data}
		if _, err := kube.CoreV1().Secrets(run.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
	}
	overlay := topologyOverlay(t, run, settings)
	if out, err := shared.c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("apply %s: %v\n%s", run.overlay, err, out)
	}
	t.Cleanup(func() {
		if out, err := shared.c.Kubectl(context.Background(), "delete", "-n", run.ns, "scaledjob/redis-keda-jobs", "deployment/redis-keda-publisher", "--wait=true", "--timeout=60s"); err != nil {
			t.Logf("delete the %s workloads: %v\n%s", run.ns, err, out)
		}
	})

	// The test's own client of the queue, as the binaries build it.
	rc := queue.RedisConfig{Mode: run.mode, Addr: queue.RedisAddr(settings["REDIS_ADDR"]), Username: users["redis-keda"][0],
		Password: queue.Secret(pw["APP_PASSWORD"]), SentinelMaster: settings["REDIS_SENTINEL_MASTER"]}
	if run.mode == queue.ModeSentinel {
		rc.SentinelUsername, rc.SentinelPassword = "redis-keda-sentinel", queue.Secret(pw["SENTINEL_PASSWORD"])
	}
	q, err := queue.Open(rc, queue.Config{Name: "events", LeaseDuration: 10 * time.Second, MaxAttempts: 5, MaxWait: 5 * time.Minute, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	b := &bed{c: shared.c, n: shared.n, kube: kube, ns: run.ns, q: q, rec: newRecorder(ctx, t, kube, run.ns)}
	defer func() {
		if t.Failed() {
			t.Logf("KEDA operator log lines about %s:\n%s", run.ns, kedaLogLines(t, shared.c, run.ns))
		}
	}()
	b.waitPublishers(ctx, t, 1)
	b.waitScaledJobReady(ctx, t)

	r, _ := b.burst(ctx, t, strings.TrimPrefix(run.ns, "redis-keda-"), topologyEvents, 2)
	if r.jobs != topologyEvents {
		t.Logf("note: %d Jobs for %d events (KEDA's accurate strategy may start one more for an event a starting pod takes a moment later)", r.jobs, topologyEvents)
	}
	for _, s := range servers {
		if log, _ := s.Do("ACL", "LOG").([]any); len(log) > 0 {
			t.Errorf("%s: ACL LOG holds %d denied commands, first %v: a documented user lacks a permission", s.Addr, len(log), log[0])
		}
	}
	t.Logf("%s (%s): %d events -> %d Jobs, first Job after %s, drained in %s; whole subtest %s",
		run.overlay, run.mode, r.events, r.jobs, r.firstJob.Round(10*time.Millisecond), r.drain.Round(10*time.Millisecond), time.Since(start).Round(time.Second))
}

// applyACLs creates the users k8s/README.md documents on every data node
// (the base users, then the "redis-cli -h NODE" lines) and on every
// sentinel (the "redis-cli -h SENTINEL" line), passwords filled in.
func applyACLs(t *testing.T, pw map[string]string, nodes, sentinels []*redistest.Server) {
	t.Helper()
	fill := func(words []string) []any {
		out := make([]any, len(words))
		for i, w := range words {
			for ph, p := range pw {
				w = strings.ReplaceAll(w, ph, p)
			}
			out[i] = w
		}
		return out
	}
	b, err := os.ReadFile("../k8s/README.md")
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string][][]any{}
	for _, line := range strings.Split(string(b), "\n") {
		for _, where := range []string{"NODE", "SENTINEL"} {
			if rest, ok := strings.CutPrefix(line, "redis-cli -h "+where+" "); ok {
				extra[where] = append(extra[where], fill(strings.Fields(rest)))
			}
		}
	}
	if len(extra["NODE"]) == 0 || len(extra["SENTINEL"]) == 0 {
		t.Fatalf("k8s/README.md has no cluster node or sentinel ACL lines")
	}
	users := readmeACL(t)
	for _, n := range nodes {
		for _, u := range []string{"redis-keda", "keda"} {
			n.Do(append([]any{"ACL", "SETUSER"}, fill(users[u])...)...)
		}
		for _, args := range extra["NODE"] {
			n.Do(args...)
		}
	}
	for _, s := range sentinels {
		for _, args := range extra["SENTINEL"] {
			s.Do(args...)
		}
	}
}

// topologyOverlay writes a kustomization on top of the example overlay
// with what differs on the bed: its own namespace, the topology's
// addresses, TLS off (the overlay's CA file unset), the e2e overlay's
// timings, and pod HTTP on loopback (pods share the host's network).
func topologyOverlay(t *testing.T, run topologyRun, settings map[string]string) string {
	t.Helper()
	example, err := filepath.Abs(filepath.Join("../k8s/overlays", run.overlay))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, example) // kustomize refuses absolute paths
	if err != nil {
		t.Fatal(err)
	}
	var lits strings.Builder
	for k, v := range settings {
		fmt.Fprintf(&lits, "      - %s=%s\n", k, v)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - %s
configMapGenerator:
  - name: redis-keda-config
    behavior: merge
    literals:
%s      - REDIS_TLS=false
      - REDIS_TLS_CA_FILE=
      - HTTP_ADDR=127.0.0.1:0
      - UI_ADDR=127.0.0.1:0
      - LEASE_DURATION=10s
      - CLAIM_TIMEOUT=5s
      - REDIS_RETRY_TIMEOUT=20s
      - MAX_WAIT=5m
      - BATCH_SIZE=0
      - REAP_INTERVAL=2s
patches:
  - target:
      group: keda.sh
      kind: ScaledJob
      name: redis-keda-jobs
    patch: |-
      - op: replace
        path: /spec/triggers/0/metadata/enableTLS
        value: "false"
      - op: replace
        path: /spec/pollingInterval
        value: %d
      - op: replace
        path: /spec/maxReplicaCount
        value: %d
`, run.ns, rel, lits.String(), pollingSeconds, maxReplicas)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

//go:build e2e

package e2e_test

// What users deploy to production, end to end: the prod overlay (plus the
// redis-tls-ca component, as documented for a private CA) against a
// redis-server that listens with TLS only, has the default user off, and has
// exactly the two ACL users of k8s/README.md. The real KEDA operator logs in
// as its own user through the TriggerAuthentication (username, password and
// CA from Secrets provided out of band, enableTLS on the trigger); the real
// jobs and publisher binaries log in as the application user with
// REDIS_TLS_CA_FILE. Required: one Job per event.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-keda/redis-keda/e2e/cluster"
	"github.com/redis-keda/redis-keda/e2e/internal/proc"
	"github.com/redis-keda/redis-keda/internal/acldoc"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/queue"
	"github.com/redis/go-redis/v9"
)

const (
	prodNamespace = "redis-keda" // k8s/overlays/prod
	tlsEvents     = 20
)

func testProdTLSACL(ctx context.Context, t *testing.T, shared *bed) {
	start := time.Now()
	work := t.TempDir()
	certs, err := cluster.NewServingTLS(filepath.Join(work, "tls"), "redis-keda-e2e-redis-ca", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// Fresh passwords each run: nothing here may depend on a committed one.
	passwords := map[string]string{"APP_PASSWORD": randomSecret(t), "KEDA_PASSWORD": randomSecret(t)}
	users := readmeACL(t)
	addr := startTLSRedis(t, work, certs, users, passwords)
	appUser, kedaUser := users["redis-keda"][0], users["keda"][0]

	trust := x509.NewCertPool() // only the test's CA, not the system's
	caPEM, err := os.ReadFile(certs.CACert)
	if err != nil || !trust.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read CA %s: %v", certs.CACert, err)
	}
	client := func(user, password string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password, MaxRetries: -1,
			TLSConfig: &tls.Config{RootCAs: trust, MinVersion: tls.VersionTLS12}})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	app := client(appUser, passwords["APP_PASSWORD"])
	checkRedisRefuses(ctx, t, addr, client, kedaUser, passwords)

	// The prod overlay's out-of-band Secrets.
	kube := shared.kube
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prodNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"redis-keda-redis":    {"password": passwords["APP_PASSWORD"], "keda-username": kedaUser, "keda-password": passwords["KEDA_PASSWORD"]},
		"redis-keda-redis-ca": {"ca.crt": string(caPEM)},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: prodNamespace}, StringData: data}
		if _, err := kube.CoreV1().Secrets(prodNamespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
	}
	overlay := prodTLSOverlay(t, work, addr, certs.CACert)
	if out, err := shared.c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("apply the prod overlay: %v\n%s", err, out)
	}
	// Runs before the redis-server is stopped (cleanups run last-in first-out):
	// no publisher or job is left retrying against a dead Redis.
	t.Cleanup(func() {
		if out, err := shared.c.Kubectl(context.Background(), "delete", "-n", prodNamespace, "scaledjob/redis-keda-jobs", "deployment/redis-keda-publisher", "--wait=true", "--timeout=60s"); err != nil {
			t.Logf("delete the prod workloads: %v\n%s", err, out)
		}
	})

	q, err := queue.New(app, queue.Config{Name: "events", LeaseDuration: 30 * time.Second, MaxAttempts: 5, MaxWait: time.Hour, MaxPayloadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{c: shared.c, n: shared.n, kube: kube, ns: prodNamespace, q: q, rdb: app, rec: newRecorder(ctx, t, kube, prodNamespace)}
	defer func() {
		if t.Failed() {
			t.Logf("KEDA operator log lines about %s:\n%s", prodNamespace, kedaLogLines(t, shared.c, prodNamespace))
		}
	}()
	b.waitPublishers(ctx, t, 2) // prod runs two
	b.waitScaledJobReady(ctx, t)

	r, jobs := b.burst(ctx, t, "tls", tlsEvents, 2)

	// Jobs carry KEDA's managed-by, not the manifests' "kustomize".
	for _, j := range jobs {
		if got := j.labels["app.kubernetes.io/managed-by"]; got != "keda-operator" {
			t.Errorf("Job %s: app.kubernetes.io/managed-by=%q, want keda-operator", j.name, got)
		}
		if got := j.labels["app.kubernetes.io/component"]; got != "jobs" {
			t.Errorf("Job %s: app.kubernetes.io/component=%q, want jobs", j.name, got)
		}
	}
	// prod's publishers publish nothing (BATCH_SIZE=0): the only events any
	// job acked are the test's.
	acked := b.ackedIDs(jobs)
	_, ids := events("tls", tlsEvents, 2)
	for id := range acked {
		if !slices.Contains(ids, id) {
			t.Errorf("a job acked %q, which the test did not publish (the prod publisher published?)", id)
		}
	}
	if s, err := q.Stats(ctx); err != nil || s.Pending != 0 || s.Processing != 0 || s.Dead != 0 {
		t.Errorf("queue after the run: %+v (%v), want empty", s, err)
	}
	t.Logf("prod overlay + redis-tls-ca, TLS-only redis-server, default user off, users %s and %s from k8s/README.md: %d events -> %d Jobs, first Job after %s, drained in %s; whole subtest %s",
		appUser, kedaUser, r.events, r.jobs, r.firstJob.Round(10*time.Millisecond), r.drain.Round(10*time.Millisecond), time.Since(start).Round(time.Second))
}

// checkRedisRefuses: the server is TLS-only, the default user is off, and
// KEDA's user can read the list length but not write.
func checkRedisRefuses(ctx context.Context, t *testing.T, addr string, client func(user, password string) *redis.Client, kedaUser string, passwords map[string]string) {
	t.Helper()
	plain := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("the redis-server answers plaintext; it must be TLS-only")
	}
	if err := client("", "").Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING over TLS without credentials: %v, want NOAUTH (default user off)", err)
	}
	keda := client(kedaUser, passwords["KEDA_PASSWORD"])
	if err := keda.LPush(ctx, "events", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("LPUSH as %s: %v, want NOPERM", kedaUser, err)
	}
}

// prodTLSOverlay writes two kustomizations: one that adds the redis-tls-ca
// component to k8s/overlays/prod (what a user with a private CA deploys), and
// one on top with what only the node stand-in needs: this run's Redis address,
// the CA as a host file (the stand-in mounts no volumes, so the component's
// /etc/redis-keda/tls/ca.crt does not exist for it), a free HTTP port per
// publisher (pods share the host network), and the e2e overlay's
// pollingInterval and maxReplicaCount so the one-Job-per-event bounds and the
// timing are those of the other tests. Everything else is prod's.
func prodTLSOverlay(t *testing.T, work, redisAddr, caFile string) string {
	t.Helper()
	prod, err := filepath.Abs("../k8s/overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	component, err := filepath.Abs("../k8s/components/redis-tls-ca")
	if err != nil {
		t.Fatal(err)
	}
	withCA, standIn := filepath.Join(work, "prod-tls-ca"), filepath.Join(work, "prod-stand-in")
	rel := func(from, to string) string {
		p, err := filepath.Rel(from, to) // kustomize refuses absolute paths
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{
		withCA: fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
components:
  - %s
`, rel(withCA, prod), rel(withCA, component)),
		standIn: fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../prod-tls-ca
configMapGenerator:
  - name: redis-keda-config
    behavior: merge
    literals:
      - REDIS_ADDR=%s
      - REDIS_TLS_CA_FILE=%s
      - HTTP_ADDR=127.0.0.1:0
      - UI_ADDR=127.0.0.1:0
patches:
  - target:
      group: keda.sh
      kind: ScaledJob
      name: redis-keda-jobs
    patch: |-
      - op: replace
        path: /spec/pollingInterval
        value: %d
      - op: replace
        path: /spec/maxReplicaCount
        value: %d
`, redisAddr, caFile, pollingSeconds, maxReplicas),
	}
	for dir, body := range files {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return standIn
}

// startTLSRedis runs redis-server with TLS only (no plaintext port) on a
// free loopback port, with an ACL file holding "user default off" and the
// given users (placeholders replaced by passwords). It is stopped by PID
// when the test ends.
func startTLSRedis(t *testing.T, work string, certs cluster.ServingTLS, users map[string][]string, passwords map[string]string) string {
	t.Helper()
	dir := filepath.Join(work, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var acl strings.Builder
	acl.WriteString("user default off\n")
	for _, name := range slices.Sorted(maps.Keys(users)) {
		line := strings.Join(users[name], " ")
		for placeholder, pw := range passwords {
			line = strings.ReplaceAll(line, placeholder, pw)
		}
		acl.WriteString("user " + line + "\n")
	}
	aclFile := filepath.Join(dir, "users.acl")
	if err := os.WriteFile(aclFile, []byte(acl.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logFile := filepath.Join(dir, "redis.log")
	p, err := proc.Start(proc.Spec{Name: "redis-server (TLS)", Path: redistest.Binary(t), Args: []string{
		"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key, "--tls-ca-cert-file", certs.CACert,
		"--tls-auth-clients", "no", // clients prove who they are with ACL users, not certificates
		"--aclfile", aclFile,
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", logFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop redis-server: %v", err)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // readiness only; verification is tested by the clients
		if err == nil {
			conn.Close()
			return addr
		}
		if p.Exited() || time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("redis-server with TLS on %s not ready: %v (exited %v)\n%s", addr, err, p.Exited(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readmeACL returns the ACL users of k8s/README.md: user -> the words after
// "ACL SETUSER" (the user name first).
func readmeACL(t *testing.T) map[string][]string {
	t.Helper()
	acl, err := acldoc.ReadFile("../k8s/README.md", "redis-keda", "keda")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// kedaLogLines returns the KEDA operator's log lines that mention ns (its
// errors connecting to Redis, e.g. NOPERM, name the ScaledJob's namespace).
func kedaLogLines(t *testing.T, c *cluster.Cluster, ns string) string {
	b, err := os.ReadFile(filepath.Join(c.LogDir(), "keda-operator.log"))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"`+ns+`"`) || strings.Contains(line, "NOPERM") {
			out = append(out, line)
		}
	}
	if len(out) > 40 {
		out = out[len(out)-40:]
	}
	return strings.Join(out, "\n")
}

package k8s_test

// The Redis Cluster and Sentinel packaging: components/redis-cluster,
// components/redis-sentinel and the overlays that use them render to a
// ScaledJob with KEDA's redis-cluster / redis-sentinel list trigger whose
// every address and credential comes from the same ConfigMap and Secret as
// the workloads, valid against KEDA v2.21's CRDs, and a ConfigMap the
// binaries accept as it is.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/jobs"
	"github.com/redis-keda/redis-keda/internal/publisher"
	"github.com/redis-keda/redis-keda/queue"
)

// topologyCase is one composition with a Cluster or Sentinel component.
type topologyCase struct {
	name string
	dir  string // an overlay, or "" to compose base + components
	// components composed over the base when dir is "".
	components []string
	mode       queue.RedisMode
	// external Secrets the composition expects out of band.
	external []string
}

func topologyCases() []topologyCase {
	return []topologyCase{
		{name: "overlays/redis-cluster", dir: "overlays/redis-cluster", mode: queue.ModeCluster, external: []string{redisSecret, redisCASecret}},
		{name: "overlays/redis-sentinel", dir: "overlays/redis-sentinel", mode: queue.ModeSentinel, external: []string{redisSecret, redisCASecret}},
		{name: "redis-cluster", components: []string{"redis-cluster"}, mode: queue.ModeCluster, external: []string{redisSecret}},
		{name: "redis-sentinel", components: []string{"redis-sentinel"}, mode: queue.ModeSentinel, external: []string{redisSecret}},
		{name: "redis-cluster+publisher-pdb", components: []string{"redis-cluster", "publisher-pdb"},
			mode: queue.ModeCluster, external: []string{redisSecret}},
		// Either order: neither component replaces what the other adds.
		{name: "redis-tls-ca+redis-cluster", components: []string{"redis-tls-ca", "redis-cluster"},
			mode: queue.ModeCluster, external: []string{redisSecret, redisCASecret}},
		{name: "redis-sentinel+redis-tls-ca+publisher-pdb", components: []string{"redis-sentinel", "redis-tls-ca", "publisher-pdb"},
			mode: queue.ModeSentinel, external: []string{redisSecret, redisCASecret}},
	}
}

func TestClusterAndSentinelPackaging(t *testing.T) {
	for _, tc := range topologyCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tc.dir
			if dir == "" {
				tmp := t.TempDir()
				var b strings.Builder
				fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: redis-keda\nresources:\n  - %s\ncomponents:\n",
					relFrom(t, tmp, "base"))
				for _, c := range tc.components {
					fmt.Fprintf(&b, "  - %s\n", relFrom(t, tmp, filepath.Join("components", c)))
				}
				// What an overlay sets (the components leave it to the overlay).
				b.WriteString("configMapGenerator:\n  - name: redis-keda-config\n    behavior: merge\n    literals:\n")
				b.WriteString("      - REDIS_ADDR=redis-0.example:6379,redis-1.example:6379\n      - REDIS_MIN_REPLICAS=1\n")
				if tc.mode == queue.ModeSentinel {
					b.WriteString("      - REDIS_SENTINEL_MASTER=mymaster\n      - REDIS_SENTINEL_USERNAME=sentinel-user\n")
				}
				dir = writeKustomization(t, tmp, b.String())
			}
			r := render(t, dir)
			checkNamesResolve(t, r, tc.external)
			checkKEDASchema(t, r)
			for _, p := range podSpecs(r) {
				checkPodSecurity(t, p.where, p.spec)
			}
			checkTopology(t, r, tc.mode)
		})
	}
}

// checkTopology asserts the trigger, the TriggerAuthentication and the
// configuration of a Cluster or Sentinel composition.
func checkTopology(t *testing.T, r rendered, mode queue.RedisMode) {
	t.Helper()
	cm := configData(t, r)
	for k := range cm {
		if strings.Contains(k, "PASSWORD") {
			t.Errorf("ConfigMap holds %s: secrets belong in a Secret", k)
		}
	}
	if cm["REDIS_MODE"] != string(mode) {
		t.Errorf("REDIS_MODE=%q, want %s", cm["REDIS_MODE"], mode)
	}
	// The binaries accept the rendered configuration as it is: the
	// ConfigMap plus what each pod gets from the Secret.
	env := map[string]string{}
	for k, v := range cm {
		env[k] = v
	}
	for _, p := range podSpecs(r) {
		for _, e := range list(p.spec, "containers", 0, "env") {
			if mapAt(e, "valueFrom", "secretKeyRef") != nil {
				env[str(e, "name")] = "from-the-secret"
			}
		}
	}
	var jc jobs.Config
	if err := config.ParseFrom(&jc, env); err != nil {
		t.Errorf("the jobs binary refuses the ConfigMap: %v", err)
	}
	var pc publisher.Config
	if err := config.ParseFrom(&pc, env); err != nil {
		t.Errorf("the publisher refuses the ConfigMap: %v", err)
	}
	if pc.Queue.MinReplicas < 1 {
		t.Errorf("REDIS_MIN_REPLICAS=%d: a replicated Redis should have publishing wait for a replica", pc.Queue.MinReplicas)
	}
	// KEDA splits the addresses on commas itself: REDIS_ADDR must be a
	// host:port list, never a URL.
	if strings.Contains(cm["REDIS_ADDR"], "://") || len(strings.Split(cm["REDIS_ADDR"], ",")) < 2 {
		t.Errorf("REDIS_ADDR=%q: want a comma-separated host:port list KEDA can read too", cm["REDIS_ADDR"])
	}

	sj := r.one(t, "ScaledJob")
	trig := list(sj, "spec", "triggers")
	if len(trig) != 1 {
		t.Fatalf("%d triggers, want 1", len(trig))
	}
	tr := trig[0]
	wantType := map[queue.RedisMode]string{queue.ModeCluster: "redis-cluster", queue.ModeSentinel: "redis-sentinel"}[mode]
	if got := str(tr, "type"); got != wantType {
		t.Errorf("trigger type %q, want %s", got, wantType)
	}
	md := mapAt(tr, "metadata")
	want := map[string]string{
		"addressesFromEnv": "REDIS_ADDR",
		"listName":         cm["QUEUE"],
		"listLength":       "1",
		"enableTLS":        cm["REDIS_TLS"],
	}
	fromEnv := []string{"REDIS_ADDR"}
	if mode == queue.ModeSentinel {
		want["sentinelMasterFromEnv"] = "REDIS_SENTINEL_MASTER"
		want["sentinelUsernameFromEnv"] = "REDIS_SENTINEL_USERNAME"
		want["sentinelPasswordFromEnv"] = "REDIS_SENTINEL_PASSWORD"
		fromEnv = append(fromEnv, "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_USERNAME")
	}
	for k, w := range want {
		if got, _ := md[k].(string); got != w {
			t.Errorf("trigger metadata %s = %q, want %q", k, got, w)
		}
	}
	// One source for each value: no literal address, no second spelling.
	for _, k := range []string{"address", "addresses", "addressFromEnv", "host", "hosts", "port", "ports", "password", "passwordFromEnv", "sentinelMaster", "sentinelPassword"} {
		if _, ok := md[k]; ok {
			t.Errorf("trigger metadata sets %s", k)
		}
	}
	if _, ok := md["databaseIndex"]; ok && mode == queue.ModeCluster {
		t.Errorf("redis-cluster trigger sets databaseIndex: Redis Cluster has database 0 only")
	}
	if mode == queue.ModeSentinel && str(md, "databaseIndex") != cm["REDIS_DB"] {
		t.Errorf("trigger databaseIndex %q, REDIS_DB %q", str(md, "databaseIndex"), cm["REDIS_DB"])
	}
	// KEDA resolves *FromEnv in the container envSourceContainerName names.
	containers := list(sj, "spec", "jobTargetRef", "template", "spec", "containers")
	var jobsC any
	for _, c := range containers {
		if str(c, "name") == str(sj, "spec", "envSourceContainerName") {
			jobsC = c
		}
	}
	if jobsC == nil {
		t.Fatalf("envSourceContainerName %q names no container", str(sj, "spec", "envSourceContainerName"))
	}
	for _, k := range fromEnv {
		if !containerGetsFromConfigMap(r, jobsC, k) {
			t.Errorf("jobs container does not get %s from the ConfigMap", k)
		}
	}
	if mode == queue.ModeSentinel {
		for _, p := range podSpecs(r) {
			if strings.HasPrefix(p.where, "StatefulSet/") {
				continue
			}
			if got := envSecretRef(list(p.spec, "containers")[0], "REDIS_SENTINEL_PASSWORD"); got != redisSecret+"/sentinel-password" {
				t.Errorf("%s: REDIS_SENTINEL_PASSWORD from %q, want %s/sentinel-password", p.where, got, redisSecret)
			}
		}
	}

	// KEDA logs in as its own ACL user; the CA when there is one.
	ta := r.find("TriggerAuthentication", str(tr, "authenticationRef", "name"))
	if ta == nil {
		t.Fatalf("authenticationRef %q does not resolve", str(tr, "authenticationRef", "name"))
	}
	params := map[string]string{}
	for _, ref := range list(ta, "spec", "secretTargetRef") {
		params[str(ref, "parameter")] = str(ref, "name") + "/" + str(ref, "key")
	}
	wantParams := map[string]string{"username": redisSecret + "/keda-username", "password": redisSecret + "/keda-password"}
	if cm["REDIS_TLS_CA_FILE"] != "" {
		wantParams["ca"] = redisCASecret + "/ca.crt"
	}
	if fmt.Sprint(params) != fmt.Sprint(wantParams) {
		t.Errorf("TriggerAuthentication parameters %v, want %v", params, wantParams)
	}
}

// The KEDA trigger's metadata names are those of KEDA v2.21's Redis scaler
// (pkg/scalers/redis_scaler.go, keda tags): a name it does not know would be
// ignored silently (unexpected-parameter checks are off by default).
func TestTriggerMetadataNamesAreKEDAs(t *testing.T) {
	known := map[string]bool{}
	for _, n := range []string{"address", "addresses", "username", "password", "sentinelUsername", "sentinelPassword",
		"sentinelMaster", "host", "hosts", "port", "ports", "unsafeSsl", "listLength", "activationListLength", "listName",
		"databaseIndex", "enableTLS"} {
		known[n] = true
	}
	for _, tc := range topologyCases() {
		if tc.dir == "" {
			continue
		}
		sj := render(t, tc.dir).one(t, "ScaledJob")
		for k := range mapAt(sj, "spec", "triggers", 0, "metadata") {
			if !known[strings.TrimSuffix(k, "FromEnv")] {
				t.Errorf("%s: trigger metadata %q is not a parameter of KEDA's Redis scaler", tc.dir, k)
			}
		}
	}
	// The list above is KEDA's: read the scaler's source when the module is
	// in the module cache (it is wherever the e2e bed was built).
	src := filepath.Join(os.Getenv("HOME"), "go/pkg/mod/github.com/kedacore/keda/v2@v2.21.0/pkg/scalers/redis_scaler.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("KEDA v2.21.0 source not in the module cache (%v): checked against the list only", err)
	}
	for n := range known {
		if !strings.Contains(string(b), "name="+n) && !strings.Contains(string(b), ";"+n) {
			t.Errorf("%q is not a keda tag name in %s", n, src)
		}
	}
}

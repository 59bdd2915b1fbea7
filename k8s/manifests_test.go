package k8s_test

// Renders the root kustomization, every overlay and every combination of
// components over the base, and asserts on the rendered objects what the
// packaging promises: KEDA ScaledJob semantics, names that resolve after
// Kustomize adds hash suffixes, restricted pod security, rewritten images,
// and field names that exist in KEDA v2.21's CRDs.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/redis-keda/redis-keda/internal/acldoc"
)

const (
	appImage       = "redis-keda" // placeholder in the base
	redisSecret    = "redis-keda-redis"
	redisCASecret  = "redis-keda-redis-ca"
	kedaNamespace  = "keda"
	configMapName  = "redis-keda-config"
	publisherName  = "redis-keda-publisher"
	scaledJobName  = "redis-keda-jobs"
	triggerAuthRef = "redis-keda-redis"
)

var components = []string{"in-cluster-redis", "external-redis", "redis-tls-ca", "network-policy", "publisher-pdb", "monitoring"}

// baseConfig is the base's ConfigMap, value for value.
var baseConfig = map[string]string{
	"REDIS_ADDR": "localhost:6379", "REDIS_USERNAME": "redis-keda", "REDIS_DB": "0", "REDIS_TLS": "false",
	"QUEUE": "events", "LEASE_DURATION": "30s", "MAX_ATTEMPTS": "5",
	"RETRY_BASE": "15s", "RETRY_FACTOR": "4", "RETRY_MAX": "1h", "RETRY_JITTER": "0.25", "MOVE_INTERVAL": "500ms", "MAX_WAIT": "1h", "MAX_PAYLOAD_BYTES": "1048576", "LOG_LEVEL": "info",
	"CLAIM_TIMEOUT": "10s", "MAX_EVENTS": "1", "REDIS_RETRY_TIMEOUT": "60s",
	"PUBLISH_INTERVAL": "10s", "BATCH_SIZE": "10", "WAIT_MIN": "10", "WAIT_MAX": "20", "PUBLISH_LIMIT": "0",
	"REAP_INTERVAL": "15s", "HTTP_ADDR": ":8080", "SHUTDOWN_TIMEOUT": "10s",
}

// with returns baseConfig with changes applied.
func with(changes map[string]string) map[string]string {
	out := maps.Clone(baseConfig)
	maps.Copy(out, changes)
	return out
}

// overlay describes what one overlay must render to, exactly.
type overlay struct {
	dir       string
	namespace string
	// Secrets the overlay documents as provided out of band.
	external []string
	prod     bool
	// config is the whole rendered ConfigMap: every variable the overlay (or
	// a component it uses) sets, and the base's value for the rest.
	config map[string]string
	// ScaledJob settings the overlay sets.
	pollingInterval, maxReplicaCount, activeDeadline int64
	// Memory limits of the jobs and publisher containers.
	jobsMemory, publisherMemory string
	// runnerArgs: the overlay uses components/runner; the user's command
	// (the container's args) and image.
	runnerArgs  []string
	runnerImage string
}

var devOverlay = overlay{dir: "overlays/dev", namespace: "redis-demo",
	config: with(map[string]string{
		"REDIS_ADDR": "redis-keda-redis.redis-demo.svc.cluster.local:6379", // the qualified name KEDA resolves from namespace keda
		"REDIS_TLS":  "false",                                              // in-cluster-redis
		"LOG_LEVEL":  "debug", "MAX_WAIT": "5m",
		"BATCH_SIZE": "2", "PUBLISH_INTERVAL": "10s", "WAIT_MIN": "5", "WAIT_MAX": "15", "PUBLISH_LIMIT": "120",
	}),
	pollingInterval: 2, maxReplicaCount: 5, activeDeadline: 420, jobsMemory: "32Mi", publisherMemory: "32Mi",
}

var overlays = []overlay{
	withDir(devOverlay, ".."), // the root kustomization.yaml
	devOverlay,
	{dir: "overlays/prod", namespace: "redis-keda", external: []string{redisSecret}, prod: true,
		config: with(map[string]string{
			"REDIS_TLS":  "true", // external-redis
			"REDIS_ADDR": "redis.prod.example.internal:6380", "LOG_LEVEL": "info",
			"BATCH_SIZE": "0",
		}),
		pollingInterval: 5, maxReplicaCount: 100, activeDeadline: 3900, jobsMemory: "48Mi", publisherMemory: "48Mi",
	},
	withRunner(devOverlay, "overlays/example-runner", "debian:bookworm-slim", "sh", "/app/handle.sh"),
	withRunner(withConfig(devOverlay, map[string]string{"RUN_TIMEOUT": "40s", "RUN_KILL_GRACE": "2s",
		"RETRY_BASE": "2s", "RETRY_FACTOR": "2", "RETRY_MAX": "8s", "RETRY_JITTER": "0"}),
		"overlays/e2e-node-runner", "redis-keda-e2e/redis:bookworm", "sh", "/app/e2e-handler.sh"),
	{dir: "overlays/e2e", namespace: "redis-keda-e2e",
		config: with(map[string]string{
			"REDIS_ADDR": "127.0.0.1:6379", "REDIS_USERNAME": "default",
			"LEASE_DURATION": "10s", "CLAIM_TIMEOUT": "5s", "REDIS_RETRY_TIMEOUT": "20s", "MAX_WAIT": "5m",
			"BATCH_SIZE": "0", "REAP_INTERVAL": "2s",
		}),
		pollingInterval: 2, maxReplicaCount: 10, activeDeadline: 420, jobsMemory: "64Mi", publisherMemory: "64Mi",
	},
}

func withDir(o overlay, dir string) overlay { o.dir = dir; return o }

func withConfig(o overlay, changes map[string]string) overlay {
	o.config = maps.Clone(o.config)
	maps.Copy(o.config, changes)
	return o
}

func withRunner(o overlay, dir, image string, args ...string) overlay {
	o.dir, o.runnerImage, o.runnerArgs = dir, image, args
	return o
}

// The runner component's injected parts, exactly.
var (
	runnerCommand        = []string{"/redis-keda/redis-keda", "run", "--"}
	runnerInstallCommand = []string{"/redis-keda", "install", "/runner"}
)

// checkRunner: the Job's container runs the runner around the overlay's
// command in the overlay's image, with the binary from the init container
// (the project image) on a read-only emptyDir and /tmp on another.
func checkRunner(t *testing.T, r rendered, ov overlay) {
	t.Helper()
	sj := r.one(t, "ScaledJob")
	pod := mapAt(sj, "spec", "jobTargetRef", "template", "spec")
	c := list(pod, "containers")[0]
	if got := str(c, "name"); got != "workload" || str(sj, "spec", "envSourceContainerName") != "workload" {
		t.Errorf("container %q, envSourceContainerName %q: want both workload", got, str(sj, "spec", "envSourceContainerName"))
	}
	if got := toStrings(list(c, "command")); !slices.Equal(got, runnerCommand) {
		t.Errorf("command %q, want %q", got, runnerCommand)
	}
	if got := toStrings(list(c, "args")); !slices.Equal(got, ov.runnerArgs) {
		t.Errorf("args %q, want %q", got, ov.runnerArgs)
	}
	if got := str(c, "image"); got != ov.runnerImage {
		t.Errorf("workload image %q, want %q", got, ov.runnerImage)
	}
	inits := list(pod, "initContainers")
	if len(inits) != 1 || str(inits[0], "name") != "install-runner" ||
		!slices.Equal(toStrings(list(inits[0], "command")), runnerInstallCommand) || !strings.HasPrefix(str(inits[0], "image"), "redis-keda:") {
		t.Fatalf("initContainers %v, want install-runner %q from the project image", inits, runnerInstallCommand)
	}
	mounts := func(c any) map[string]string {
		out := map[string]string{}
		for _, m := range list(c, "volumeMounts") {
			ro, _ := mapAt(m)["readOnly"].(bool)
			out[str(m, "name")] = fmt.Sprintf("%s ro=%v", str(m, "mountPath"), ro)
		}
		return out
	}
	if got, want := mounts(inits[0]), map[string]string{"redis-keda-runner": "/runner ro=false"}; !maps.Equal(got, want) {
		t.Errorf("install-runner mounts %v, want %v", got, want)
	}
	if got := mounts(c); got["redis-keda-runner"] != "/redis-keda ro=true" || got["tmp"] != "/tmp ro=false" {
		t.Errorf("workload mounts %v, want the runner read-only at /redis-keda and /tmp writable", got)
	}
	vols := map[string]bool{}
	for _, v := range list(pod, "volumes") {
		if _, ok := mapAt(v)["emptyDir"]; ok {
			vols[str(v, "name")] = true
		}
	}
	if !vols["redis-keda-runner"] || !vols["tmp"] {
		t.Errorf("emptyDir volumes %v, want redis-keda-runner and tmp", vols)
	}
	// KEDA reads REDIS_ADDR in the container it names; the runner needs the
	// Redis password there too (and passes neither to the program).
	if !containerGetsFromConfigMap(r, c, "REDIS_ADDR") || envSecretRef(c, "REDIS_PASSWORD") == "" {
		t.Errorf("workload container lacks REDIS_ADDR from the ConfigMap or REDIS_PASSWORD from the Secret")
	}
	for _, o := range r.byKind("ConfigMap") {
		if o.name() == "redis-keda-handler" && o.namespace() != ov.namespace {
			t.Errorf("handler ConfigMap in namespace %q", o.namespace())
		}
	}
}

func TestOverlays(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			t.Parallel()
			r := render(t, ov.dir)
			checkCommon(t, r, ov.external)
			checkImagesRewritten(t, r, ov.prod)
			for _, o := range r.objs {
				if o.kind() == "Namespace" {
					if o.name() != ov.namespace {
						t.Errorf("Namespace %s, want %s", o.name(), ov.namespace)
					}
					continue
				}
				if o.namespace() != ov.namespace {
					t.Errorf("%s in namespace %q, want %q", o.id(), o.namespace(), ov.namespace)
				}
			}
			if r.find("Namespace", ov.namespace) == nil {
				t.Errorf("overlay does not create Namespace %s", ov.namespace)
			}
			cm := configData(t, r)
			// Every variable, exactly: a value an overlay sets but a component
			// overrides (kustomize applies components' generators after the
			// overlay's) shows up here.
			for _, k := range slices.Sorted(maps.Keys(ov.config)) {
				if cm[k] != ov.config[k] {
					t.Errorf("ConfigMap %s=%q, want %q", k, cm[k], ov.config[k])
				}
			}
			for k, v := range cm {
				if _, ok := ov.config[k]; !ok {
					t.Errorf("ConfigMap has unexpected %s=%q", k, v)
				}
			}
			sj := r.one(t, "ScaledJob")
			for path, want := range map[string]int64{
				"spec.pollingInterval":                    ov.pollingInterval,
				"spec.maxReplicaCount":                    ov.maxReplicaCount,
				"spec.jobTargetRef.activeDeadlineSeconds": ov.activeDeadline,
			} {
				if got, _ := num(sj, toPath(path)...); got != want {
					t.Errorf("ScaledJob %s = %d, want %d", path, got, want)
				}
			}
			jobs := list(sj, "spec", "jobTargetRef", "template", "spec", "containers")[0]
			pub := list(r.find("Deployment", publisherName), "spec", "template", "spec", "containers")[0]
			if got := str(jobs, "resources", "limits", "memory"); got != ov.jobsMemory {
				t.Errorf("jobs memory limit %s, want %s", got, ov.jobsMemory)
			}
			if got := str(pub, "resources", "limits", "memory"); got != ov.publisherMemory {
				t.Errorf("publisher memory limit %s, want %s", got, ov.publisherMemory)
			}
			checkPublishRate(t, cm, sj)
			if ov.runnerArgs != nil {
				checkRunner(t, r, ov)
			}
			secrets := r.byKind("Secret")
			if ov.prod {
				if len(r.byKind("StatefulSet")) != 0 {
					t.Errorf("prod: runs an in-cluster Redis")
				}
				// No password is ever committed for prod: every Secret comes
				// from outside the repository.
				if len(secrets) != 0 {
					t.Errorf("prod renders %d Secrets; its Secrets must be provided out of band", len(secrets))
				}
				if len(r.byKind("PodDisruptionBudget")) != 1 {
					t.Errorf("prod: want a PodDisruptionBudget")
				}
				if n, _ := num(r.find("Deployment", publisherName), "spec", "replicas"); n != 2 {
					t.Errorf("prod: publisher replicas %d, want 2 so the PDB can keep one", n)
				}
			}
			// A committed password says so on the Secret itself.
			for _, s := range secrets {
				if note := str(s, "metadata", "annotations", "redis-keda/demo-only"); !strings.Contains(note, "never use") {
					t.Errorf("%s holds committed passwords but no redis-keda/demo-only annotation saying so (got %q)", s.id(), note)
				}
			}
		})
	}
}

// TestOverlayOwnSettingsWin: whatever an overlay's own configMapGenerator
// declares is what renders (read from the overlay's kustomization.yaml, so a
// new overlay is covered too). Kustomize v5 merges a component's generator
// after the overlay's: a component that sets the same variable wins silently.
func TestOverlayOwnSettingsWin(t *testing.T) {
	dirs, err := filepath.Glob("overlays/*/kustomization.yaml")
	if err != nil || len(dirs) < 3 {
		t.Fatalf("overlays: %v %v", dirs, err)
	}
	for _, k := range dirs {
		dir := filepath.Dir(k)
		t.Run(dir, func(t *testing.T) {
			b, err := os.ReadFile(k)
			if err != nil {
				t.Fatal(err)
			}
			var kust struct {
				ConfigMapGenerator []struct {
					Name     string   `json:"name"`
					Literals []string `json:"literals"`
				} `json:"configMapGenerator"`
			}
			if err := yaml.Unmarshal(b, &kust); err != nil {
				t.Fatal(err)
			}
			cm := configData(t, render(t, dir))
			n := 0
			for _, g := range kust.ConfigMapGenerator {
				if g.Name != configMapName {
					continue
				}
				for _, lit := range g.Literals {
					key, val, _ := strings.Cut(lit, "=")
					n++
					if cm[key] != val {
						t.Errorf("%s declares %s=%q but renders %s=%q", k, key, val, key, cm[key])
					}
				}
			}
			t.Logf("%s: %d settings of its own, all rendered as declared", dir, n)
		})
	}
}

// checkPublishRate: an overlay that publishes synthetic events must not
// publish faster than its ScaledJob can work them off, or the backlog grows
// without bound. Capacity = maxReplicaCount Jobs at a time, each busy for the
// mean wait plus jobOverhead (pod scheduling and start, then the Job being
// marked Complete: 2-3 s measured on the e2e bed, more on a real node).
func checkPublishRate(t *testing.T, cm map[string]string, sj obj) {
	t.Helper()
	const jobOverhead, headroom = 5.0, 0.75
	batch, _ := strconv.Atoi(cm["BATCH_SIZE"])
	if batch == 0 {
		return
	}
	interval, err := time.ParseDuration(cm["PUBLISH_INTERVAL"])
	if err != nil || interval <= 0 {
		t.Fatalf("PUBLISH_INTERVAL=%q", cm["PUBLISH_INTERVAL"])
	}
	lo, _ := strconv.Atoi(cm["WAIT_MIN"])
	hi, _ := strconv.Atoi(cm["WAIT_MAX"])
	maxJobs, _ := num(sj, "spec", "maxReplicaCount")
	in := float64(batch) / interval.Seconds()
	out := float64(maxJobs) / (float64(lo+hi)/2 + jobOverhead)
	if in > headroom*out {
		t.Errorf("publishes %.2f events/s but %d Jobs of ~%.0f s work off %.2f/s: the backlog grows by %.0f an hour (keep inflow <= %.0f%% of capacity)",
			in, maxJobs, float64(lo+hi)/2+jobOverhead, out, (in-out)*3600, headroom*100)
	}
	if cm["PUBLISH_LIMIT"] == "0" {
		t.Errorf("PUBLISH_LIMIT=0: an overlay that publishes synthetic events should stop on its own (use task load for more)")
	}
}

// TestRootIsDev: `kubectl apply -k .` deploys exactly the dev overlay.
func TestRootIsDev(t *testing.T) {
	root, dev := render(t, ".."), render(t, "overlays/dev")
	if !bytes.Equal(root.yaml, dev.yaml) {
		t.Errorf("root kustomization renders differently from overlays/dev")
	}
}

// TestComponentCombinations renders base + every subset of components, with
// the Secrets an overlay would provide, and runs the common checks.
func TestComponentCombinations(t *testing.T) {
	n := 0
	for mask := 0; mask < 1<<len(components); mask++ {
		var set []string
		for i, c := range components {
			if mask&(1<<i) != 0 {
				set = append(set, c)
			}
		}
		if slices.Contains(set, "in-cluster-redis") && slices.Contains(set, "external-redis") {
			continue // two Redis choices at once: not a valid composition
		}
		n++
		name := "base"
		if len(set) > 0 {
			name = strings.Join(set, "+")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var b strings.Builder
			fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: combo\nresources:\n  - %s\n", relFrom(t, dir, "base"))
			if len(set) > 0 {
				b.WriteString("components:\n")
				for _, c := range set {
					fmt.Fprintf(&b, "  - %s\n", relFrom(t, dir, filepath.Join("components", c)))
				}
			}
			b.WriteString("secretGenerator:\n  - name: " + redisSecret + "\n    literals: [password=test, keda-username=keda, keda-password=test2]\n")
			b.WriteString("    options: {annotations: {redis-keda/demo-only: never use}}\n")
			if slices.Contains(set, "redis-tls-ca") {
				b.WriteString("  - name: " + redisCASecret + "\n    literals: [ca.crt=test]\n")
			}
			if slices.Contains(set, "in-cluster-redis") { // as an overlay names the component's Service
				b.WriteString("configMapGenerator:\n  - name: redis-keda-config\n    behavior: merge\n    literals: [REDIS_ADDR=redis-keda-redis.combo.svc.cluster.local:6379]\n")
			}
			r := render(t, writeKustomization(t, dir, b.String()))
			checkCommon(t, r, nil)
			cm := configData(t, r)
			switch {
			case slices.Contains(set, "in-cluster-redis"):
				checkInClusterRedis(t, r, cm)
			case slices.Contains(set, "external-redis"):
				if cm["REDIS_TLS"] != "true" {
					t.Errorf("external-redis: REDIS_TLS=%q, want true", cm["REDIS_TLS"])
				}
			}
			if slices.Contains(set, "redis-tls-ca") {
				checkTLSCA(t, r, cm)
			}
			if slices.Contains(set, "network-policy") {
				checkNetworkPolicy(t, r)
			}
			if slices.Contains(set, "publisher-pdb") {
				pdb := r.one(t, "PodDisruptionBudget")
				pub := r.find("Deployment", publisherName)
				if !selects(mapAt(pdb, "spec", "selector", "matchLabels"), mapAt(pub, "spec", "template", "metadata", "labels")) {
					t.Errorf("PDB selector does not select the publisher pods")
				}
			}
			if slices.Contains(set, "monitoring") {
				checkMonitoring(t, r)
			}
		})
	}
	if n != 48 {
		t.Errorf("rendered %d combinations, want 48", n)
	}
}

// checkCommon asserts what must hold for every composition.
func checkCommon(t *testing.T, r rendered, external []string) {
	t.Helper()
	cm := configData(t, r)
	for k, v := range cm {
		if strings.Contains(strings.ToUpper(k), "PASSWORD") {
			t.Errorf("ConfigMap holds %s: secrets belong in a Secret", k)
		}
		_ = v
	}
	checkNamesResolve(t, r, external)
	checkKEDASchema(t, r)
	checkScaledJob(t, r, cm)
	checkPublisher(t, r, cm)
	for _, p := range podSpecs(r) {
		checkPodSecurity(t, p.where, p.spec)
	}
}

func configData(t *testing.T, r rendered) map[string]string {
	t.Helper()
	var cms []obj
	for _, o := range r.byKind("ConfigMap") {
		if strings.HasPrefix(o.name(), configMapName) {
			cms = append(cms, o)
		}
	}
	if len(cms) != 1 {
		t.Fatalf("want one ConfigMap %s-*, got %d", configMapName, len(cms))
	}
	out := map[string]string{}
	for k, v := range mapAt(cms[0], "data") {
		out[k], _ = v.(string)
	}
	for _, k := range []string{"REDIS_ADDR", "QUEUE", "MAX_WAIT", "SHUTDOWN_TIMEOUT", "CLAIM_TIMEOUT", "HTTP_ADDR"} {
		if out[k] == "" {
			t.Errorf("ConfigMap lacks %s", k)
		}
	}
	return out
}

func seconds(t *testing.T, cm map[string]string, key string) int64 {
	t.Helper()
	d, err := time.ParseDuration(cm[key])
	if err != nil {
		t.Fatalf("ConfigMap %s=%q: %v", key, cm[key], err)
	}
	return int64(d / time.Second)
}

func checkScaledJob(t *testing.T, r rendered, cm map[string]string) {
	t.Helper()
	sj := r.one(t, "ScaledJob")
	if got := str(sj, "apiVersion"); got != "keda.sh/v1alpha1" {
		t.Errorf("ScaledJob apiVersion %q", got)
	}
	spec := mapAt(sj, "spec")
	want := map[string]string{
		"scalingStrategy.strategy": "accurate",
		"rollout.strategy":         "gradual",
	}
	for path, w := range want {
		if got := str(spec, toPath(path)...); got != w {
			t.Errorf("ScaledJob spec.%s = %q, want %q", path, got, w)
		}
	}
	if _, ok := spec["rolloutStrategy"]; ok {
		t.Errorf("ScaledJob uses deprecated spec.rolloutStrategy; use spec.rollout.strategy")
	}
	intRange := func(path string, lo, hi int64) int64 {
		n, ok := num(spec, toPath(path)...)
		if !ok || n < lo || n > hi {
			t.Errorf("ScaledJob spec.%s = %v (set: %v), want in [%d, %d]", path, n, ok, lo, hi)
		}
		return n
	}
	intRange("pollingInterval", 1, 30)
	intRange("maxReplicaCount", 1, 1000)
	intRange("minReplicaCount", 0, 0)
	// Failed Jobs (and their pods' logs) outlive successful ones: KEDA keeps
	// more of them, and the TTL, which does not tell failed from successful,
	// keeps them for a day.
	if ok, fail := intRange("successfulJobsHistoryLimit", 0, 10), intRange("failedJobsHistoryLimit", 1, 10); fail <= ok {
		t.Errorf("failedJobsHistoryLimit %d <= successfulJobsHistoryLimit %d: failures must be kept longer", fail, ok)
	}
	if n, _ := num(spec, "jobTargetRef", "ttlSecondsAfterFinished"); n != minFailedJobTTL {
		t.Errorf("ttlSecondsAfterFinished %d, want %d: the TTL deletes failed Jobs too, so it must leave a day to look at them", n, minFailedJobTTL)
	}
	checkJobLabels(t, sj)
	checkPodNameEnv(t, list(sj, "spec", "jobTargetRef", "template", "spec", "containers")[0])

	job := mapAt(spec, "jobTargetRef")
	intRange("jobTargetRef.backoffLimit", 0, 0)
	intRange("jobTargetRef.parallelism", 1, 1)
	intRange("jobTargetRef.completions", 1, 1)
	// A job may sleep MAX_WAIT, after waiting up to CLAIM_TIMEOUT for an event,
	// and needs SHUTDOWN_TIMEOUT to hand it back: the deadline must cover all.
	minDeadline := seconds(t, cm, "MAX_WAIT") + seconds(t, cm, "CLAIM_TIMEOUT") + seconds(t, cm, "SHUTDOWN_TIMEOUT")
	if n, _ := num(job, "activeDeadlineSeconds"); n <= minDeadline {
		t.Errorf("activeDeadlineSeconds %d, want > MAX_WAIT+CLAIM_TIMEOUT+SHUTDOWN_TIMEOUT = %d", n, minDeadline)
	}
	pod := mapAt(job, "template", "spec")
	if got := str(pod, "restartPolicy"); got != "Never" {
		t.Errorf("job restartPolicy %q, want Never", got)
	}
	if n, _ := num(pod, "terminationGracePeriodSeconds"); n <= seconds(t, cm, "SHUTDOWN_TIMEOUT") {
		t.Errorf("job terminationGracePeriodSeconds %d, want > SHUTDOWN_TIMEOUT so SIGTERM can requeue", n)
	}
	containers := list(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("job pod has %d containers, want 1", len(containers))
	}
	c := containers[0]
	// The built-in sleep, or the runner component around the user's command
	// (checkRunner).
	if cmd := toStrings(list(c, "command")); !slices.Equal(cmd, []string{"/jobs"}) && !slices.Equal(cmd, runnerCommand) {
		t.Errorf("job command %v, want [/jobs] or %q", cmd, runnerCommand)
	}
	if got, want := str(spec, "envSourceContainerName"), str(c, "name"); got != want {
		t.Errorf("envSourceContainerName %q, want the jobs container %q", got, want)
	}
	checkGoRuntimeEnv(t, "jobs", c)

	trig := list(spec, "triggers")
	if len(trig) != 1 {
		t.Fatalf("ScaledJob has %d triggers, want 1", len(trig))
	}
	tr := trig[0]
	if got := str(tr, "type"); got != "redis" {
		t.Errorf("trigger type %q, want redis", got)
	}
	md := mapAt(tr, "metadata")
	expect := map[string]string{
		"listName":   cm["QUEUE"],
		"listLength": "1",
		// The address comes from the jobs container's env (the ConfigMap), so
		// there is one place to change it.
		"addressFromEnv": "REDIS_ADDR",
	}
	for k, w := range expect {
		if got, _ := md[k].(string); got != w {
			t.Errorf("trigger metadata %s = %q, want %q", k, got, w)
		}
	}
	if _, ok := md["activationListLength"].(string); !ok {
		t.Errorf("trigger metadata activationListLength not set (as a string)")
	}
	for _, k := range []string{"address", "host", "port", "password", "passwordFromEnv"} {
		if _, ok := md[k]; ok {
			t.Errorf("trigger metadata sets %s: the address comes from REDIS_ADDR, the password from the TriggerAuthentication", k)
		}
	}
	db := cm["REDIS_DB"]
	if db == "" {
		db = "0"
	}
	if got, _ := md["databaseIndex"].(string); got != db && !(got == "" && db == "0") {
		t.Errorf("trigger databaseIndex %q, ConfigMap REDIS_DB %q", got, db)
	}
	tls, _ := strconv.ParseBool(cm["REDIS_TLS"])
	mdTLS, _ := strconv.ParseBool(fmt.Sprint(md["enableTLS"]))
	if tls != mdTLS {
		t.Errorf("trigger enableTLS %v, ConfigMap REDIS_TLS %q", md["enableTLS"], cm["REDIS_TLS"])
	}
	// KEDA reads REDIS_ADDR from the container named by envSourceContainerName:
	// the container must really get it from the ConfigMap.
	if !containerGetsFromConfigMap(r, c, "REDIS_ADDR") {
		t.Errorf("jobs container does not get REDIS_ADDR from the ConfigMap")
	}
	// Authentication: the TriggerAuthentication exists and carries the password.
	if k := str(tr, "authenticationRef", "kind"); k != "" && k != "TriggerAuthentication" {
		t.Errorf("authenticationRef kind %q", k)
	}
	ta := r.find("TriggerAuthentication", str(tr, "authenticationRef", "name"))
	if ta == nil {
		t.Fatalf("authenticationRef %q does not resolve", str(tr, "authenticationRef", "name"))
	}
	params := map[string]string{}
	for _, ref := range list(ta, "spec", "secretTargetRef") {
		params[str(ref, "parameter")] = str(ref, "name") + "/" + str(ref, "key")
	}
	// KEDA logs in as its own ACL user, from the same Secret as the
	// application's password but its own keys.
	appPassword := envSecretRef(c, "REDIS_PASSWORD")
	secret, _, _ := strings.Cut(appPassword, "/")
	wantParams := map[string]string{"username": secret + "/keda-username", "password": secret + "/keda-password"}
	if cm["REDIS_TLS_CA_FILE"] != "" {
		// The CA Secret: provided out of band (unsuffixed) or generated.
		if ca := params["ca"]; strings.HasPrefix(ca, redisCASecret) && strings.HasSuffix(ca, "/ca.crt") {
			wantParams["ca"] = ca
		} else {
			t.Errorf("jobs use a private CA but KEDA's ca parameter is %q, want Secret %s key ca.crt", ca, redisCASecret)
		}
	}
	if appPassword != secret+"/password" {
		t.Errorf("jobs REDIS_PASSWORD from %s, want key password", appPassword)
	}
	if !maps.Equal(params, wantParams) {
		t.Errorf("TriggerAuthentication parameters %v, want %v", params, wantParams)
	}
	if _, ok := md["username"]; ok {
		t.Errorf("trigger metadata sets username: KEDA's user comes from the TriggerAuthentication")
	}
}

// minFailedJobTTL: a failed Job and its logs stay at least a day.
const minFailedJobTTL = 86400

// checkJobLabels computes the labels KEDA v2.21 puts on each Job it creates
// (pkg/scaling/executor/scale_jobs.go, generateJobs: its own labels, then the
// ScaledJob's labels over them except those listed in the
// scaledjob.keda.sh/job-excluded-labels annotation) and asserts the Jobs keep
// KEDA's managed-by: label-based pruning of what Kustomize manages must never
// match a running Job. The e2e test asserts the same on Jobs the real
// operator creates.
func checkJobLabels(t *testing.T, sj obj) {
	t.Helper()
	labels := map[string]string{
		"app.kubernetes.io/name":       sj.name(),
		"app.kubernetes.io/part-of":    sj.name(),
		"app.kubernetes.io/managed-by": "keda-operator",
		"scaledjob.keda.sh/name":       sj.name(),
	}
	excluded := strings.Split(str(sj, "metadata", "annotations", "scaledjob.keda.sh/job-excluded-labels"), ",")
	for k, v := range mapAt(sj, "metadata", "labels") {
		if !slices.Contains(excluded, k) {
			labels[k] = fmt.Sprint(v)
		}
	}
	if got := labels["app.kubernetes.io/managed-by"]; got != "keda-operator" {
		t.Errorf("KEDA's Jobs would be labelled app.kubernetes.io/managed-by=%s, want keda-operator (exclude it with the scaledjob.keda.sh/job-excluded-labels annotation)", got)
	}
	if got := labels["app.kubernetes.io/component"]; got != "jobs" {
		t.Errorf("KEDA's Jobs would be labelled app.kubernetes.io/component=%q, want jobs (task watch and stats select on it)", got)
	}
}

func checkPublisher(t *testing.T, r rendered, cm map[string]string) {
	t.Helper()
	d := r.find("Deployment", publisherName)
	if d == nil {
		t.Fatalf("no Deployment %s", publisherName)
	}
	pod := mapAt(d, "spec", "template", "spec")
	if n, _ := num(pod, "terminationGracePeriodSeconds"); n <= seconds(t, cm, "SHUTDOWN_TIMEOUT") {
		t.Errorf("publisher terminationGracePeriodSeconds %d, want > SHUTDOWN_TIMEOUT", n)
	}
	if !selects(mapAt(d, "spec", "selector", "matchLabels"), mapAt(d, "spec", "template", "metadata", "labels")) {
		t.Errorf("publisher selector does not match its pod labels")
	}
	c := list(pod, "containers")[0]
	if cmd := list(c, "command"); len(cmd) != 1 || cmd[0] != "/publisher" {
		t.Errorf("publisher command %v, want [/publisher]", cmd)
	}
	_, port, _ := net.SplitHostPort(cm["HTTP_ADDR"])
	var ports []string
	named := map[string]string{}
	for _, p := range list(c, "ports") {
		n, _ := num(p, "containerPort")
		ports = append(ports, fmt.Sprint(n))
		named[str(p, "name")] = fmt.Sprint(n)
	}
	if !slices.Contains(ports, port) {
		t.Errorf("publisher ports %v do not include HTTP_ADDR port %s", ports, port)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("publisher %s path %q, want %q", probe, got, path)
		}
		p := fmt.Sprint(get(c, probe, "httpGet", "port"))
		if named[p] != "" {
			p = named[p]
		}
		if p != port {
			t.Errorf("publisher %s port %s, want %s", probe, p, port)
		}
	}
	if !containerGetsFromConfigMap(r, c, "REDIS_ADDR") {
		t.Errorf("publisher does not get REDIS_ADDR from the ConfigMap")
	}
	if envSecretRef(c, "REDIS_PASSWORD") == "" {
		t.Errorf("publisher REDIS_PASSWORD is not from a Secret")
	}
	checkGoRuntimeEnv(t, "publisher", c)
}

// checkPodNameEnv: the job's container (jobs, or the runner's workload)
// gets its pod's name from the downward API, exactly once, for the lease
// header and the done record.
func checkPodNameEnv(t *testing.T, c any) {
	t.Helper()
	var got []string
	for _, e := range list(c, "env") {
		if str(e, "name") == "POD_NAME" {
			b, _ := json.Marshal(e)
			got = append(got, string(b))
		}
	}
	want := `{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}`
	if len(got) != 1 || got[0] != want {
		t.Errorf("container %s POD_NAME env %q, want exactly [%s]", str(c, "name"), got, want)
	}
}

// checkGoRuntimeEnv: GOMAXPROCS follows the CPU limit, GOMEMLIMIT is
// floor(90%) of the memory limit in MiB (the heap target leaves room for
// stacks and runtime overhead below the OOM kill; 100% would be reached only
// as the kernel kills the process).
func checkGoRuntimeEnv(t *testing.T, who string, c any) {
	t.Helper()
	limit := mebibytes(t, who+" limits.memory", str(c, "resources", "limits", "memory"))
	want := fmt.Sprintf("%dMiB", limit*9/10)
	var maxprocs, memlimit bool
	for _, e := range list(c, "env") {
		switch str(e, "name") {
		case "GOMAXPROCS":
			maxprocs = true
			if got := str(e, "valueFrom", "resourceFieldRef", "resource"); got != "limits.cpu" {
				t.Errorf("%s GOMAXPROCS from %q, want resourceFieldRef limits.cpu", who, got)
			}
		case "GOMEMLIMIT":
			memlimit = true
			if got := str(e, "value"); got != want {
				t.Errorf("%s GOMEMLIMIT=%q, want %s (90%% of the %dMi limit)", who, got, want, limit)
			}
		}
	}
	if !maxprocs || !memlimit {
		t.Errorf("%s: GOMAXPROCS set %v, GOMEMLIMIT set %v", who, maxprocs, memlimit)
	}
}

// mebibytes parses a memory quantity that is a whole number of Mi or Gi.
func mebibytes(t *testing.T, what, q string) int64 {
	t.Helper()
	for suffix, mul := range map[string]int64{"Mi": 1, "Gi": 1024} {
		if n, err := strconv.ParseInt(strings.TrimSuffix(q, suffix), 10, 64); strings.HasSuffix(q, suffix) && err == nil {
			return n * mul
		}
	}
	t.Fatalf("%s = %q: want a whole number of Mi or Gi", what, q)
	return 0
}

// envSecretRef returns "secret/key" of an env var set from a Secret.
func envSecretRef(c any, name string) string {
	for _, e := range list(c, "env") {
		if str(e, "name") == name {
			if _, literal := mapAt(e)["value"]; literal {
				return ""
			}
			ref := mapAt(e, "valueFrom", "secretKeyRef")
			if ref == nil {
				return ""
			}
			return str(ref, "name") + "/" + str(ref, "key")
		}
	}
	return ""
}

func containerGetsFromConfigMap(r rendered, c any, key string) bool {
	for _, ef := range list(c, "envFrom") {
		cm := r.find("ConfigMap", str(ef, "configMapRef", "name"))
		if cm != nil && mapAt(cm, "data")[key] != nil {
			return true
		}
	}
	return false
}

// podSpec is a pod template found in a workload.
type podSpec struct {
	where string
	spec  map[string]any
}

func podSpecs(r rendered) []podSpec {
	var out []podSpec
	for _, o := range r.objs {
		var s map[string]any
		switch o.kind() {
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet":
			s = mapAt(o, "spec", "template", "spec")
		case "CronJob":
			s = mapAt(o, "spec", "jobTemplate", "spec", "template", "spec")
		case "ScaledJob":
			s = mapAt(o, "spec", "jobTargetRef", "template", "spec")
		case "Pod":
			s = mapAt(o, "spec")
		default:
			continue
		}
		out = append(out, podSpec{where: o.id(), spec: s})
	}
	return out
}

func checkPodSecurity(t *testing.T, where string, pod map[string]any) {
	t.Helper()
	psc := mapAt(pod, "securityContext")
	if b, _ := psc["runAsNonRoot"].(bool); !b {
		t.Errorf("%s: pod securityContext.runAsNonRoot not true", where)
	}
	if got := str(psc, "seccompProfile", "type"); got != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile %q, want RuntimeDefault", where, got)
	}
	if b, ok := pod["automountServiceAccountToken"].(bool); !ok || b {
		t.Errorf("%s: automountServiceAccountToken not false", where)
	}
	all := append(slices.Clone(list(pod, "initContainers")), list(pod, "containers")...)
	if len(all) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for _, c := range all {
		who := where + "/" + str(c, "name")
		sc := mapAt(c, "securityContext")
		if b, ok := sc["allowPrivilegeEscalation"].(bool); !ok || b {
			t.Errorf("%s: allowPrivilegeEscalation not false", who)
		}
		if b, _ := sc["readOnlyRootFilesystem"].(bool); !b {
			t.Errorf("%s: readOnlyRootFilesystem not true", who)
		}
		if v, ok := sc["runAsNonRoot"].(bool); ok && !v {
			t.Errorf("%s: runAsNonRoot false", who)
		}
		if u, ok := num(sc, "runAsUser"); ok && u == 0 {
			t.Errorf("%s: runAsUser 0", who)
		}
		if s := str(sc, "seccompProfile", "type"); s != "" && s != "RuntimeDefault" {
			t.Errorf("%s: seccompProfile %q", who, s)
		}
		drop := list(sc, "capabilities", "drop")
		if !slices.Contains(drop, any("ALL")) {
			t.Errorf("%s: capabilities.drop %v lacks ALL", who, drop)
		}
		if add := list(sc, "capabilities", "add"); len(add) > 0 {
			t.Errorf("%s: adds capabilities %v", who, add)
		}
		if sc["privileged"] == true {
			t.Errorf("%s: privileged", who)
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				if str(c, "resources", kind, res) == "" {
					t.Errorf("%s: no resources.%s.%s", who, kind, res)
				}
			}
		}
	}
}

// checkNamesResolve: every ConfigMap, Secret, ServiceAccount and
// TriggerAuthentication a rendered object refers to exists under the exact
// (hash-suffixed) name, or is documented as provided out of band.
func checkNamesResolve(t *testing.T, r rendered, external []string) {
	t.Helper()
	exists := func(kind, name string) bool {
		if r.find(kind, name) != nil {
			return true
		}
		return kind == "Secret" && slices.Contains(external, name)
	}
	check := func(where, kind, name string) {
		if name == "" {
			return
		}
		if !exists(kind, name) {
			t.Errorf("%s refers to %s %q, which is not rendered", where, kind, name)
		}
	}
	for _, p := range podSpecs(r) {
		check(p.where, "ServiceAccount", str(p.spec, "serviceAccountName"))
		for _, v := range list(p.spec, "volumes") {
			check(p.where, "Secret", str(v, "secret", "secretName"))
			check(p.where, "ConfigMap", str(v, "configMap", "name"))
		}
		for _, c := range append(slices.Clone(list(p.spec, "initContainers")), list(p.spec, "containers")...) {
			for _, ef := range list(c, "envFrom") {
				check(p.where, "ConfigMap", str(ef, "configMapRef", "name"))
				check(p.where, "Secret", str(ef, "secretRef", "name"))
			}
			for _, e := range list(c, "env") {
				check(p.where, "ConfigMap", str(e, "valueFrom", "configMapKeyRef", "name"))
				if ref := mapAt(e, "valueFrom", "secretKeyRef"); ref != nil {
					check(p.where, "Secret", str(ref, "name"))
					if s := r.find("Secret", str(ref, "name")); s != nil && mapAt(s, "data")[str(ref, "key")] == nil {
						t.Errorf("%s: Secret %s has no key %s", p.where, str(ref, "name"), str(ref, "key"))
					}
				}
			}
		}
	}
	for _, ta := range r.byKind("TriggerAuthentication") {
		for _, ref := range list(ta, "spec", "secretTargetRef") {
			check(ta.id(), "Secret", str(ref, "name"))
			if s := r.find("Secret", str(ref, "name")); s != nil && mapAt(s, "data")[str(ref, "key")] == nil {
				t.Errorf("%s: Secret %s has no key %s", ta.id(), str(ref, "name"), str(ref, "key"))
			}
		}
	}
	for _, sj := range r.byKind("ScaledJob") {
		for _, tr := range list(sj, "spec", "triggers") {
			check(sj.id(), "TriggerAuthentication", str(tr, "authenticationRef", "name"))
		}
	}
	// Generated objects must carry a hash suffix (so changes roll out), and
	// nothing may still point at the unsuffixed name.
	for _, o := range r.objs {
		if (o.kind() == "ConfigMap" || o.kind() == "Secret") && (o.name() == configMapName || o.name() == redisSecret) {
			t.Errorf("%s has no content hash suffix", o.id())
		}
	}
}

func checkImagesRewritten(t *testing.T, r rendered, prod bool) {
	t.Helper()
	for _, p := range podSpecs(r) {
		for _, c := range append(slices.Clone(list(p.spec, "initContainers")), list(p.spec, "containers")...) {
			img := str(c, "image")
			name, tag, digest := splitImage(img)
			if img == appImage {
				t.Errorf("%s: image is the base placeholder %q", p.where, img)
			}
			if tag == "" && digest == "" {
				t.Errorf("%s: image %q has neither tag nor digest", p.where, img)
			}
			if tag == "latest" {
				t.Errorf("%s: image %q uses latest", p.where, img)
			}
			if prod && !strings.Contains(name, "/") {
				t.Errorf("%s: prod image %q is not from a registry", p.where, img)
			}
			if prod && (tag == "dev" || strings.HasSuffix(tag, "-dev")) {
				t.Errorf("%s: prod image %q uses a dev tag", p.where, img)
			}
		}
	}
}

func splitImage(img string) (name, tag, digest string) {
	if i := strings.Index(img, "@"); i >= 0 {
		img, digest = img[:i], img[i+1:]
	}
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		img, tag = img[:i], img[i+1:]
	}
	return img, tag, digest
}

// redisImage: 7.4.6 or later in the 7.4 line has the 2025 Lua CVE fixes
// (CVE-2025-49844, -46817, -46818, -46819).
const redisImage = "redis:7.4.6-alpine"

func checkInClusterRedis(t *testing.T, r rendered, cm map[string]string) {
	t.Helper()
	ss := r.one(t, "StatefulSet")
	pod := mapAt(ss, "spec", "template", "spec")
	c := list(pod, "containers")[0]
	if got := str(c, "image"); got != redisImage {
		t.Errorf("redis image %q, want %q", got, redisImage)
	}
	opts := redisOptions(toStrings(list(c, "args")))
	limit := mebibytes(t, "redis limits.memory", str(c, "resources", "limits", "memory"))
	for opt, want := range map[string]string{
		"dir": "/data", "appendonly": "yes", "appendfsync": "always", "save": "", "maxmemory-policy": "noeviction",
		// 80% of the container limit (Redis: 1mb = 1 MiB): Redis refuses
		// writes before the kernel kills it.
		"maxmemory": fmt.Sprintf("%dmb", limit*8/10),
	} {
		if got := opts[opt]; len(got) != 1 || strings.Join(got[0], " ") != want {
			t.Errorf("redis --%s %q, want exactly %q", opt, got, want)
		}
	}
	if _, ok := opts["requirepass"]; ok {
		t.Errorf("redis --requirepass: the default user must be off, not password-protected")
	}
	// Exactly the README's ACL users, token for token, and the default user
	// off.
	acl := readmeACL(t)
	wantUsers := [][]string{
		{"default", "off"},
		replaceToken(acl["redis-keda"], ">APP_PASSWORD", ">$(REDIS_PASSWORD)"),
		replaceToken(acl["keda"], ">KEDA_PASSWORD", ">$(KEDA_REDIS_PASSWORD)"),
	}
	if !reflect.DeepEqual(opts["user"], wantUsers) {
		t.Errorf("redis --user options\n got %q\nwant %q (k8s/README.md#redis-acls)", opts["user"], wantUsers)
	}
	if cm["REDIS_USERNAME"] != "redis-keda" {
		t.Errorf("REDIS_USERNAME=%q, but the in-cluster Redis's application user is redis-keda", cm["REDIS_USERNAME"])
	}
	for env, key := range map[string]string{"REDIS_PASSWORD": "password", "KEDA_REDIS_PASSWORD": "keda-password", "REDISCLI_AUTH": "password"} {
		if ref := envSecretRef(c, env); !strings.HasPrefix(ref, redisSecret) || !strings.HasSuffix(ref, "/"+key) {
			t.Errorf("redis %s from %q, want Secret %s key %s", env, ref, redisSecret, key)
		}
	}
	for _, s := range r.byKind("Secret") {
		if strings.HasPrefix(s.name(), redisSecret+"-") && !strings.HasPrefix(s.name(), redisCASecret) {
			if u := secretValue(t, s, "keda-username"); u != "keda" {
				t.Errorf("%s keda-username %q, but the in-cluster Redis's KEDA user is keda", s.id(), u)
			}
		}
	}
	probe := strings.Join(toStrings(list(c, "readinessProbe", "exec", "command")), " ")
	if !strings.Contains(probe, "redis-cli --user redis-keda ping") {
		t.Errorf("redis readiness probe %q does not log in as the application user", probe)
	}
	var mounted bool
	for _, m := range list(c, "volumeMounts") {
		if str(m, "mountPath") == "/data" {
			for _, vct := range list(ss, "spec", "volumeClaimTemplates") {
				if str(vct, "metadata", "name") == str(m, "name") {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("redis /data is not on a PersistentVolumeClaim")
	}
	// The Service by its qualified name: KEDA resolves REDIS_ADDR from its
	// own namespace, where a short name does not resolve.
	fqdn, port, _ := net.SplitHostPort(cm["REDIS_ADDR"])
	host, domain, _ := strings.Cut(fqdn, ".")
	svc := r.find("Service", host)
	if svc == nil {
		t.Fatalf("REDIS_ADDR %q: no Service %q", cm["REDIS_ADDR"], host)
	}
	if want := str(svc, "metadata", "namespace") + ".svc.cluster.local"; domain != want {
		t.Errorf("REDIS_ADDR %q: want the qualified name %s.%s (KEDA connects from namespace keda)", cm["REDIS_ADDR"], host, want)
	}
	if !selects(mapAt(svc, "spec", "selector"), mapAt(ss, "spec", "template", "metadata", "labels")) {
		t.Errorf("Service %s does not select the Redis pods", host)
	}
	var ok bool
	for _, p := range list(svc, "spec", "ports") {
		if n, _ := num(p, "port"); fmt.Sprint(n) == port {
			ok = true
		}
	}
	if !ok {
		t.Errorf("Service %s does not expose port %s", host, port)
	}
	if r.find("Service", str(ss, "spec", "serviceName")) == nil {
		t.Errorf("StatefulSet serviceName %q not rendered", str(ss, "spec", "serviceName"))
	}
}

// redisOptions groups redis-server command-line arguments by option:
// "--user a b --user c" is {"user": [[a b] [c]]}. (An argument such as
// "-@all" is a value: options start with "--".)
func redisOptions(args []string) map[string][][]string {
	out := map[string][][]string{}
	var cur string
	for _, a := range args {
		if strings.HasPrefix(a, "--") {
			cur = strings.TrimPrefix(a, "--")
			out[cur] = append(out[cur], []string{})
			continue
		}
		if cur != "" {
			l := out[cur]
			l[len(l)-1] = append(l[len(l)-1], a)
		}
	}
	return out
}

// readmeACL returns the ACL users of k8s/README.md: user -> the words after
// "ACL SETUSER" (the user name first).
func readmeACL(t testing.TB) map[string][]string {
	t.Helper()
	acl, err := acldoc.ReadFile("README.md", "redis-keda", "keda")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

func replaceToken(l []string, old, new string) []string {
	out := slices.Clone(l)
	for i, w := range out {
		if w == old {
			out[i] = new
		}
	}
	return out
}

// secretValue decodes one key of a rendered Secret.
func secretValue(t testing.TB, s obj, key string) string {
	t.Helper()
	if v := str(s, "stringData", key); v != "" {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(str(s, "data", key))
	if err != nil {
		t.Fatalf("%s data.%s: %v", s.id(), key, err)
	}
	return string(b)
}

func checkTLSCA(t *testing.T, r rendered, cm map[string]string) {
	t.Helper()
	file := cm["REDIS_TLS_CA_FILE"]
	if file == "" {
		t.Fatalf("redis-tls-ca: REDIS_TLS_CA_FILE not set")
	}
	for _, p := range podSpecs(r) {
		if p.where == "StatefulSet/redis-keda-redis" {
			continue
		}
		vols := map[string]string{}
		for _, v := range list(p.spec, "volumes") {
			vols[str(v, "name")] = str(v, "secret", "secretName")
		}
		c := list(p.spec, "containers")[0]
		var found bool
		for _, m := range list(c, "volumeMounts") {
			if strings.HasPrefix(file, strings.TrimSuffix(str(m, "mountPath"), "/")+"/") && strings.HasPrefix(vols[str(m, "name")], redisCASecret) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %s is not mounted from Secret %s", p.where, file, redisCASecret)
		}
	}
}

func checkNetworkPolicy(t *testing.T, r rendered) {
	t.Helper()
	np := r.one(t, "NetworkPolicy")
	var froms []any
	for _, in := range list(np, "spec", "ingress") {
		froms = append(froms, list(in, "from")...)
	}
	allowed := func(labels map[string]any) bool {
		for _, f := range froms {
			if sel := mapAt(f, "podSelector", "matchLabels"); sel != nil && mapAt(f, "namespaceSelector") == nil && selects(sel, labels) {
				return true
			}
		}
		return false
	}
	pub := r.find("Deployment", publisherName)
	sj := r.find("ScaledJob", scaledJobName)
	if !allowed(mapAt(pub, "spec", "template", "metadata", "labels")) {
		t.Errorf("NetworkPolicy does not admit the publisher pods")
	}
	if !allowed(mapAt(sj, "spec", "jobTargetRef", "template", "metadata", "labels")) {
		t.Errorf("NetworkPolicy does not admit the job pods")
	}
	var keda bool
	for _, f := range froms {
		if str(f, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") == kedaNamespace {
			keda = true
		}
	}
	if !keda {
		t.Errorf("NetworkPolicy does not admit KEDA's namespace %q", kedaNamespace)
	}
	if ss := r.find("StatefulSet", "redis-keda-redis"); ss != nil {
		if !selects(mapAt(np, "spec", "podSelector", "matchLabels"), mapAt(ss, "spec", "template", "metadata", "labels")) {
			t.Errorf("NetworkPolicy does not select the Redis pods")
		}
	}
	if r.find("Deployment", publisherName) != nil && selects(mapAt(np, "spec", "podSelector", "matchLabels"), mapAt(pub, "spec", "template", "metadata", "labels")) {
		t.Errorf("NetworkPolicy selects the publisher instead of Redis")
	}
}

// selects reports whether every selector label is in labels.
func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func toStrings(l []any) []string {
	var out []string
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func toPath(dotted string) []any {
	var p []any
	for _, s := range strings.Split(dotted, ".") {
		p = append(p, s)
	}
	return p
}

// TestKubectlAgrees renders the root and every overlay once more with
// `kubectl kustomize` (when kubectl is installed) and compares the objects.
func TestKubectlAgrees(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(kubectl, "kustomize", ov.dir).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", ov.dir, err, out)
			}
			theirs, err := parseMulti(out)
			if err != nil {
				t.Fatal(err)
			}
			ours := render(t, ov.dir)
			index := func(objs []obj) map[string]obj {
				m := map[string]obj{}
				for _, o := range objs {
					m[o.id()] = o
				}
				return m
			}
			a, b := index(ours.objs), index(theirs)
			ids := func(m map[string]obj) []string {
				var l []string
				for k := range m {
					l = append(l, k)
				}
				sort.Strings(l)
				return l
			}
			if !reflect.DeepEqual(ids(a), ids(b)) {
				t.Fatalf("objects differ:\nkrusty:  %v\nkubectl: %v", ids(a), ids(b))
			}
			for id, o := range a {
				if !reflect.DeepEqual(o, b[id]) {
					t.Errorf("%s differs between the kustomize library and kubectl kustomize", id)
				}
			}
		})
	}
}

func TestMain(m *testing.M) {
	// The kubectl stand-in of scripts_test.go runs this binary to render.
	if dir := os.Getenv(renderEnv); dir != "" {
		os.Exit(renderForStandIn(dir))
	}
	// The tests use paths relative to k8s/.
	if _, err := os.Stat("base/kustomization.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, "run from the k8s directory (go test ./k8s/)")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

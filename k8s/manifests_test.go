package k8s_test

// Renders the root kustomization, every overlay and every combination of
// components over the base, and asserts on the rendered objects what the
// packaging promises: KEDA ScaledJob semantics, names that resolve after
// Kustomize adds hash suffixes, restricted pod security, rewritten images,
// and field names that exist in KEDA v2.21's CRDs.

import (
	"bytes"
	"fmt"
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

var components = []string{"in-cluster-redis", "external-redis", "redis-tls-ca", "network-policy", "publisher-pdb"}

// overlay describes what one overlay must render to.
type overlay struct {
	dir       string
	namespace string
	// Secrets the overlay documents as provided out of band.
	external []string
	prod     bool
	// hostRedis: Redis runs outside the cluster on the host's loopback (the
	// e2e test bed's external-Redis shape): no StatefulSet, no TLS.
	hostRedis bool
}

var overlays = []overlay{
	{dir: ".." /* root kustomization.yaml */, namespace: "redis-demo"},
	{dir: "overlays/dev", namespace: "redis-demo"},
	{dir: "overlays/prod", namespace: "redis-keda", external: []string{redisSecret}, prod: true},
	{dir: "overlays/e2e", namespace: "redis-keda-e2e", hostRedis: true},
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
			sj := r.one(t, "ScaledJob")
			if ov.prod {
				if cm["REDIS_TLS"] != "true" {
					t.Errorf("prod: REDIS_TLS=%q, want true", cm["REDIS_TLS"])
				}
				if h, _, _ := net.SplitHostPort(cm["REDIS_ADDR"]); h == "localhost" || strings.HasPrefix(h, "127.") {
					t.Errorf("prod: REDIS_ADDR=%q points at loopback", cm["REDIS_ADDR"])
				}
				if len(r.byKind("StatefulSet")) != 0 {
					t.Errorf("prod: runs an in-cluster Redis")
				}
				if n, _ := num(sj, "spec", "maxReplicaCount"); n < 20 {
					t.Errorf("prod: maxReplicaCount %d, want >= 20", n)
				}
				if len(r.byKind("PodDisruptionBudget")) != 1 {
					t.Errorf("prod: want a PodDisruptionBudget")
				}
				if n, _ := num(r.find("Deployment", publisherName), "spec", "replicas"); n < 2 {
					t.Errorf("prod: publisher replicas %d, want >= 2 so the PDB can keep one", n)
				}
			} else if ov.hostRedis {
				if len(r.byKind("StatefulSet")) != 0 {
					t.Errorf("e2e: runs an in-cluster Redis")
				}
				if h, _, _ := net.SplitHostPort(cm["REDIS_ADDR"]); h != "127.0.0.1" {
					t.Errorf("e2e: REDIS_ADDR=%q, want the host loopback", cm["REDIS_ADDR"])
				}
				if cm["BATCH_SIZE"] != "0" {
					t.Errorf("e2e: BATCH_SIZE=%q, want 0 (tests push their own events)", cm["BATCH_SIZE"])
				}
			} else {
				if len(r.byKind("StatefulSet")) != 1 {
					t.Errorf("dev: want the in-cluster Redis StatefulSet")
				}
				if n, _ := num(sj, "spec", "pollingInterval"); n > 5 {
					t.Errorf("dev: pollingInterval %d, want fast polling (<= 5)", n)
				}
			}
		})
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
			b.WriteString("secretGenerator:\n  - name: " + redisSecret + "\n    literals: [password=test]\n")
			if slices.Contains(set, "redis-tls-ca") {
				b.WriteString("  - name: " + redisCASecret + "\n    literals: [ca.crt=test]\n")
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
		})
	}
	if n != 24 {
		t.Errorf("rendered %d combinations, want 24", n)
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
	intRange("successfulJobsHistoryLimit", 0, 10)
	intRange("failedJobsHistoryLimit", 1, 10)

	job := mapAt(spec, "jobTargetRef")
	intRange("jobTargetRef.backoffLimit", 0, 0)
	intRange("jobTargetRef.parallelism", 1, 1)
	intRange("jobTargetRef.completions", 1, 1)
	intRange("jobTargetRef.ttlSecondsAfterFinished", 1, 86400)
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
	if cmd := list(c, "command"); len(cmd) != 1 || cmd[0] != "/jobs" {
		t.Errorf("job command %v, want [/jobs]", cmd)
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
	if params["password"] == "" {
		t.Errorf("TriggerAuthentication has no password parameter")
	}
	if cm["REDIS_TLS_CA_FILE"] != "" && params["ca"] == "" {
		t.Errorf("jobs use a private CA but KEDA is not given it (TriggerAuthentication ca)")
	}
	// KEDA's password must be the one the workloads use.
	if pw := envSecretRef(c, "REDIS_PASSWORD"); pw != params["password"] {
		t.Errorf("KEDA password %s, jobs REDIS_PASSWORD %s", params["password"], pw)
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

func checkGoRuntimeEnv(t *testing.T, who string, c any) {
	t.Helper()
	want := map[string]string{"GOMAXPROCS": "limits.cpu", "GOMEMLIMIT": "limits.memory"}
	for _, e := range list(c, "env") {
		if w, ok := want[str(e, "name")]; ok {
			if got := str(e, "valueFrom", "resourceFieldRef", "resource"); got != w {
				t.Errorf("%s %s from %q, want resourceFieldRef %s", who, str(e, "name"), got, w)
			}
			delete(want, str(e, "name"))
		}
	}
	for k := range want {
		t.Errorf("%s lacks %s", who, k)
	}
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

func checkInClusterRedis(t *testing.T, r rendered, cm map[string]string) {
	t.Helper()
	ss := r.one(t, "StatefulSet")
	pod := mapAt(ss, "spec", "template", "spec")
	c := list(pod, "containers")[0]
	args := strings.Join(toStrings(list(c, "args")), " ")
	for _, want := range []string{"--appendonly yes", "--dir /data", "--requirepass $(REDIS_PASSWORD)", "--maxmemory-policy noeviction"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis args %q lack %q", args, want)
		}
	}
	if envSecretRef(c, "REDIS_PASSWORD") == "" {
		t.Errorf("redis password not from a Secret")
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
	host, port, _ := net.SplitHostPort(cm["REDIS_ADDR"])
	svc := r.find("Service", host)
	if svc == nil {
		t.Fatalf("REDIS_ADDR %q: no Service %q", cm["REDIS_ADDR"], host)
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
	// The tests use paths relative to k8s/.
	if _, err := os.Stat("base/kustomization.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, "run from the k8s directory (go test ./k8s/)")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

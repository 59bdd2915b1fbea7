package k8s_test

// The monitoring component: the PodMonitor scrapes the publisher, and the
// PrometheusRule's alerts — taken from the rendered manifest, so promtool
// tests exactly what is deployed — pass `promtool check rules` and the unit
// tests in testdata/monitoring/alerts_test.yaml, which must cover every
// alert firing and not firing.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// checkMonitoring asserts that the PodMonitor scrapes the publisher's
// /metrics on a port the container declares.
func checkMonitoring(t *testing.T, r rendered) {
	t.Helper()
	pm := r.one(t, "PodMonitor")
	pub := r.find("Deployment", publisherName)
	if !selects(mapAt(pm, "spec", "selector", "matchLabels"), mapAt(pub, "spec", "template", "metadata", "labels")) {
		t.Errorf("PodMonitor selector does not select the publisher pods")
	}
	eps := list(pm, "spec", "podMetricsEndpoints")
	if len(eps) != 1 || str(eps[0], "path") != "/metrics" {
		t.Fatalf("PodMonitor endpoints %v, want one with path /metrics", eps)
	}
	var ports []string
	for _, p := range list(pub, "spec", "template", "spec", "containers", 0, "ports") {
		ports = append(ports, str(p, "name"))
	}
	if !slices.Contains(ports, str(eps[0], "port")) {
		t.Errorf("PodMonitor scrapes port %q; the publisher declares %v", str(eps[0], "port"), ports)
	}
	if r.find("PrometheusRule", "redis-keda") == nil {
		t.Error("no PrometheusRule redis-keda")
	}
}

func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found on PATH: install Prometheus's tools (Debian: apt-get install -y prometheus; `go tool task deps GROUPS=promtool` does it); the alert rules are tested with it")
	}
	return p
}

func TestAlertRules(t *testing.T) {
	promtool := promtoolPath(t)
	dir := t.TempDir()
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: mon\nresources:\n  - " +
		relFrom(t, dir, "base") + "\ncomponents:\n  - " + relFrom(t, dir, "components/monitoring") + "\n"
	r := render(t, writeKustomization(t, dir, k))
	checkMonitoring(t, r)

	// The groups of the rendered PrometheusRule are the rule file.
	rule := r.one(t, "PrometheusRule")
	groups := get(rule, "spec", "groups")
	rules, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("testdata/monitoring/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s: %s", strings.Join(args, " "), strings.Join(strings.Fields(string(out)), " "))
		}
	}

	// Every alert has a test where it fires and one where it does not.
	var alerts []string
	for _, g := range list(rule, "spec", "groups") {
		for _, rl := range list(g, "rules") {
			if a := str(rl, "alert"); a != "" {
				alerts = append(alerts, a)
			}
		}
	}
	var suite map[string]any
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range list(suite, "tests") {
		for _, at := range list(tc, "alert_rule_test") {
			if len(list(at, "exp_alerts")) > 0 {
				fires[str(at, "alertname")] = true
			} else {
				quiet[str(at, "alertname")] = true
			}
		}
	}
	sort.Strings(alerts)
	want := []string{"RedisKedaDeadLettersGrowing", "RedisKedaPendingTooOld", "RedisKedaPublishWaitsForReplicas", "RedisKedaPublisherAbsent", "RedisKedaReaperNotRunning", "RedisKedaRedisUnreachable", "RedisKedaScheduledNotMoved"}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("alert %s: tested firing %v, not firing %v; want both", a, fires[a], quiet[a])
		}
	}
}

package node

import "testing"

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain":         "plain",
		"$(A)":          "1",
		"x-$(A)-$(B)-y": "x-1-two-y",
		"$(MISSING)":    "$(MISSING)",
		"$$(A)":         "$(A)",
		"cost $5":       "cost $5",
		"open $(A":      "open $(A",
		"trailing $":    "trailing $",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageRepository(t *testing.T) {
	n := &Node{opts: Options{Images: []string{"redis-keda"}}}
	for img, ok := range map[string]bool{
		"redis-keda":                     true,
		"redis-keda:dev":                 true,
		"ghcr.io/org/redis-keda:v1.2.3":  true,
		"localhost:5000/redis-keda":      true,
		"redis-keda@sha256:abc":          true,
		"busybox:1.36":                   false,
		"redis-keda-other:1":             false,
		"localhost:5000/notredis-keda:1": false,
	} {
		if got := n.runnable(img); got != ok {
			t.Errorf("runnable(%q) = %v, want %v", img, got, ok)
		}
	}
}

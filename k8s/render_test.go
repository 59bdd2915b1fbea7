package k8s_test

// Rendering helpers: build a kustomization in-process with the kustomize Go
// library (the engine behind `kubectl kustomize`) and turn the result into
// plain maps the assertions can walk.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// obj is one rendered Kubernetes object.
type obj map[string]any

func (o obj) kind() string      { return str(o, "kind") }
func (o obj) name() string      { return str(o, "metadata", "name") }
func (o obj) namespace() string { return str(o, "metadata", "namespace") }
func (o obj) id() string        { return o.kind() + "/" + o.name() }

// get walks nested maps and lists (an int path element indexes a list).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(obj); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func mapAt(v any, path ...any) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

// num returns a numeric field (YAML ints decode as float64 via JSON) and
// whether it was present.
func num(v any, path ...any) (int64, bool) {
	switch n := get(v, path...).(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

// rendered is the output of one kustomize build.
type rendered struct {
	objs []obj
	yaml []byte
}

func (r rendered) byKind(kind string) []obj {
	var out []obj
	for _, o := range r.objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) find(kind, name string) obj {
	for _, o := range r.objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

// one returns the single object of a kind or fails.
func (r rendered) one(t *testing.T, kind string) obj {
	t.Helper()
	l := r.byKind(kind)
	if len(l) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(l))
	}
	return l[0]
}

// render builds dir (a directory holding a kustomization.yaml) the way
// `kubectl kustomize dir` does.
func render(t testing.TB, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: yaml: %v", dir, err)
	}
	objs, err := parseMulti(out)
	if err != nil {
		t.Fatalf("kustomize build %s: parse output: %v", dir, err)
	}
	return rendered{objs: objs, yaml: out}
}

// parseMulti parses a multi-document YAML stream into objects.
func parseMulti(b []byte) ([]obj, error) {
	var objs []obj
	for i, doc := range splitDocs(string(b)) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if m != nil {
			objs = append(objs, obj(m))
		}
	}
	return objs, nil
}

func splitDocs(s string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimRight(line, "\r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	docs = append(docs, cur.String())
	var out []string
	for _, d := range docs {
		if strings.TrimSpace(d) != "" {
			out = append(out, d)
		}
	}
	return out
}

// writeKustomization writes a temporary kustomization that composes the base
// with a set of components, as an overlay would.
func writeKustomization(t testing.TB, dir, body string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// relFrom returns target (relative to the working directory) as a path
// relative to dir: kustomize refuses absolute resource paths.
func relFrom(t testing.TB, dir, target string) string {
	t.Helper()
	a, err := filepath.Abs(target)
	if err != nil {
		t.Fatal(err)
	}
	p, err := filepath.Rel(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

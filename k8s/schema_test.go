package k8s_test

// Validates rendered KEDA objects against KEDA v2.21.0's own CRD schemas
// (testdata/keda-crds, descriptions stripped): unknown fields, types, enums
// and required fields, as the API server's structural-schema validation
// would reject them. This is what makes a typo such as
// `scalingStrategy.stratgy` or `rollout.strategy: Gradual` fail here rather
// than on the cluster.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

var (
	crdOnce    sync.Once
	crdSchemas map[string]map[string]any // "group/version/Kind" -> openAPIV3Schema
	crdErr     error
)

func loadCRDs() (map[string]map[string]any, error) {
	crdOnce.Do(func() {
		crdSchemas = map[string]map[string]any{}
		files, err := filepath.Glob("testdata/keda-crds/*.yaml")
		if err != nil || len(files) == 0 {
			crdErr = fmt.Errorf("no CRDs in testdata/keda-crds: %v", err)
			return
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				crdErr = err
				return
			}
			var crd map[string]any
			if err := yaml.Unmarshal(b, &crd); err != nil {
				crdErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			group, kind := str(crd, "spec", "group"), str(crd, "spec", "names", "kind")
			for _, v := range list(crd, "spec", "versions") {
				key := group + "/" + str(v, "name") + "/" + kind
				crdSchemas[key] = mapAt(v, "schema", "openAPIV3Schema")
			}
		}
	})
	return crdSchemas, crdErr
}

func checkKEDASchema(t *testing.T, r rendered) {
	t.Helper()
	schemas, err := loadCRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range r.objs {
		api := str(o, "apiVersion")
		if filepath.Dir(api) != "keda.sh" {
			continue
		}
		s := schemas[api+"/"+o.kind()]
		if s == nil {
			t.Errorf("%s: %s is not a kind KEDA v2.21 serves", o.id(), api)
			continue
		}
		doc := map[string]any(o)
		for _, e := range validate(doc, s, "") {
			t.Errorf("%s: %s", o.id(), e)
		}
	}
}

// validate checks v against a structural OpenAPI v3 schema.
func validate(v any, s map[string]any, path string) []string {
	if s == nil {
		return nil
	}
	var errs []string
	bad := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "."
		}
		errs = append(errs, p+": "+fmt.Sprintf(format, args...))
	}
	if v == nil {
		if b, _ := s["nullable"].(bool); !b {
			bad("null value")
		}
		return errs
	}
	if enum := list(s, "enum"); len(enum) > 0 && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v", v, enum)
	}
	if b, _ := s["x-kubernetes-int-or-string"].(bool); b {
		switch v.(type) {
		case string, float64, int64, int:
		default:
			bad("want int or string, got %T", v)
		}
		return errs
	}
	switch str(s, "type") {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want object, got %T", v)
			return errs
		}
		props := mapAt(s, "properties")
		for _, req := range list(s, "required") {
			if _, ok := m[fmt.Sprint(req)]; !ok {
				bad("required field %q missing", req)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if path == "" && k == "metadata" {
				continue // ObjectMeta: validated by the API server, not the CRD
			}
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(m[k], ps, path+"."+k)...)
				continue
			}
			if ap, ok := s["additionalProperties"].(map[string]any); ok {
				errs = append(errs, validate(m[k], ap, path+"."+k)...)
				continue
			}
			if b, _ := s["x-kubernetes-preserve-unknown-fields"].(bool); b {
				continue
			}
			if len(props) > 0 || s["additionalProperties"] == nil {
				bad("unknown field %q", k)
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			bad("want array, got %T", v)
			return errs
		}
		items := mapAt(s, "items")
		for i, e := range l {
			errs = append(errs, validate(e, items, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			bad("want string, got %T (%v): quote it", v, v)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			bad("want integer, got %T (%v)", v, v)
		}
		if m, ok := s["minimum"].(float64); ok && f < m {
			bad("%v below minimum %v", v, m)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			bad("want number, got %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want boolean, got %T", v)
		}
	}
	return errs
}

// TestSchemaCatchesMistakes: the validator is not vacuous.
func TestSchemaCatchesMistakes(t *testing.T) {
	schemas, err := loadCRDs()
	if err != nil {
		t.Fatal(err)
	}
	s := schemas["keda.sh/v1alpha1/ScaledJob"]
	for name, doc := range map[string]string{
		"unknown field":    "spec: {jobTargetRef: {template: {}}, triggers: [{type: redis, metadata: {}}], scalingStrategy: {stratgy: accurate}}",
		"bad enum":         "spec: {jobTargetRef: {template: {}}, triggers: [{type: redis, metadata: {}}], rollout: {strategy: Gradual}}",
		"metadata not str": "spec: {jobTargetRef: {template: {}}, triggers: [{type: redis, metadata: {listLength: 1}}]}",
		"no triggers":      "spec: {jobTargetRef: {template: {}}}",
	} {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if errs := validate(m, s, ""); len(errs) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}

package acldoc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	doc := "text\n\n```\nACL SETUSER a on >P ~k -@all\n  +ping +eval\n  +llen\n```\n" +
		"  indented prose is not a rule\nACL SETUSER b on +ping\nafter\n"
	got, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"a": {"a", "on", ">P", "~k", "-@all", "+ping", "+eval", "+llen"},
		"b": {"b", "on", "+ping"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %q, want %q", got, want)
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(p, []byte("ACL SETUSER a on\nACL SETUSER b on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p, "a", "b"); err != nil {
		t.Errorf("ReadFile a, b: %v", err)
	}
	for _, users := range [][]string{{"a"}, {"a", "c"}, {"a", "b", "c"}} {
		if _, err := ReadFile(p, users...); err == nil || !strings.Contains(err.Error(), "want exactly") {
			t.Errorf("ReadFile %v: %v, want an error naming what is documented", users, err)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.md"), "a"); err == nil {
		t.Error("ReadFile of a missing file: no error")
	}
}

// The real document parses to the two users the project relies on.
func TestProjectREADME(t *testing.T) {
	acl, err := ReadFile("../../k8s/README.md", "redis-keda", "keda")
	if err != nil {
		t.Fatal(err)
	}
	if acl["keda"][1] != "on" || acl["redis-keda"][1] != "on" {
		t.Errorf("users not enabled: %q", acl)
	}
}

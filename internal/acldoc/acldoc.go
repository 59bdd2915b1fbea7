// Package acldoc reads the Redis ACL users documented in k8s/README.md, so
// that the tests which need them (the in-cluster Redis's arguments, the TLS +
// ACL end-to-end test) use exactly what the documentation tells users to
// create. The format: a line starting "ACL SETUSER", continuation lines
// indented two spaces.
package acldoc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Parse returns user name -> the words after "ACL SETUSER" (the name first,
// then the rules), in document order.
func Parse(r io.Reader) (map[string][]string, error) {
	out := map[string][]string{}
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out[cur[0]] = cur
		}
		cur = nil
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ACL SETUSER "):
			flush()
			cur = strings.Fields(strings.TrimPrefix(line, "ACL SETUSER "))
		case cur != nil && strings.HasPrefix(line, "  "):
			cur = append(cur, strings.Fields(line)...)
		default:
			flush()
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ACL users: %w", err)
	}
	return out, nil
}

// ReadFile parses path and checks that it documents exactly the users named.
func ReadFile(path string, users ...string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ACL users: %w", err)
	}
	defer f.Close()
	acl, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ok := len(acl) == len(users)
	for _, u := range users {
		ok = ok && acl[u] != nil
	}
	if !ok {
		found := make([]string, 0, len(acl))
		for u := range acl {
			found = append(found, u)
		}
		return nil, fmt.Errorf("%s documents the ACL users %q; want exactly %q", path, found, users)
	}
	return acl, nil
}

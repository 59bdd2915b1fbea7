package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestChildEnv(t *testing.T) {
	for _, tc := range []struct {
		in, keep, want []string
	}{
		{
			in: []string{"PATH=/bin", "REDIS_PASSWORD=p", "REDIS_SENTINEL_PASSWORD=sp", "REDIS_SENTINEL_USERNAME=su",
				"REDIS_ADDR=redis://u:pw@h:6379", "REDIS_USERNAME=app", "REDIS_TLS_CA_FILE=/ca.pem", "QUEUE=events"},
			want: []string{"PATH=/bin", "QUEUE=events"},
		},
		{
			in:   []string{"GITHUB_TOKEN=t", "aws_secret_access_key=s", "DB_PASSWORD=d", "DB_PASSWD=d2", "GCP_CREDENTIALS=c", "SSH_PRIVATE_KEY=k", "STRIPE_API_KEY=a", "MYAPIKEY=a2", "AWS_ACCESS_KEY_ID=i", "HOME=/home", "KEY_ID=ok"},
			want: []string{"HOME=/home", "KEY_ID=ok"},
		},
		{
			in:   []string{"DB_PASSWORD=d", "GITHUB_TOKEN=t", "REDIS_PASSWORD=p"},
			keep: []string{"DB_PASSWORD", " GITHUB_TOKEN", "REDIS_PASSWORD"}, // REDIS_* never passes
			want: []string{"DB_PASSWORD=d", "GITHUB_TOKEN=t"},
		},
	} {
		if got := childEnv(tc.in, tc.keep); !slices.Equal(got, tc.want) {
			t.Errorf("childEnv(%q, keep %q) = %q, want %q", tc.in, tc.keep, got, tc.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	for _, tc := range []struct {
		max    int
		writes []string
		want   string
	}{
		{4, nil, ""},
		{16, []string{"  boom\n"}, "boom"},
		{4, []string{"abc", "defgh"}, "…efgh"},
		{4, []string{"abcdefghij"}, "…ghij"},
		{16, []string{"ab", "\xff\n"}, "ab\uFFFD"},
	} {
		tb := &tailBuffer{max: tc.max}
		for _, w := range tc.writes {
			_, _ = tb.Write([]byte(w))
		}
		if got := tb.String(); got != tc.want {
			t.Errorf("writes %q: %q, want %q", tc.writes, got, tc.want)
		}
	}
}

// install copies the running executable, byte for byte, as DIR/redis-keda,
// read-and-execute only; a directory it cannot write is named.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	dst, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(dst)
	if err != nil || dst != filepath.Join(dir, "redis-keda") || !bytes.Equal(got, want) {
		t.Fatalf("installed %s: %d bytes (%v), want a copy of %s (%d bytes)", dst, len(got), err, self, len(want))
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o555 {
		t.Errorf("mode %v, want 0555", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".redis-keda-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := Install(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "install into "+filepath.Join(dir, "missing")+" (a writable directory") {
		t.Errorf("missing dir: %v", err)
	}
}

package runner

import (
	"slices"
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

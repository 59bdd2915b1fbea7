package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// Connection mistakes end with exit 1 (README: exit codes) and a message
// naming the variable to check; no secret is ever printed. Dial timeouts:
// TestPartitionLongerThanRetryTimeoutExits1; a stopped server:
// TestRedisUnreachableExitsNonZeroWithClearMessage.
func TestConnectionMistakesNameTheVariable(t *testing.T) {
	const wrong = "n0t-the-passw0rd"
	cases := []struct {
		name  string
		tls   bool     // the server speaks only TLS
		env   []string // on top of the fixture's (REDIS_PASSWORD=s3cret)
		retry bool     // retried for REDIS_RETRY_TIMEOUT before exit 1
		want  string   // the error; %[1]s is the address
	}{
		{name: "wrong password", env: []string{"REDIS_PASSWORD=" + wrong},
			want: `redis at standalone %[1]s db=0 user="" password=set tls=false: Redis refused the credentials: check REDIS_USERNAME and REDIS_PASSWORD: register claim on events: WRONGPASS invalid username-password pair or user is disabled.`},
		{name: "wrong user", env: []string{"REDIS_USERNAME=nobody"},
			want: `redis at standalone %[1]s db=0 user="nobody" password=set tls=false: Redis refused the credentials: check REDIS_USERNAME and REDIS_PASSWORD: register claim on events: WRONGPASS invalid username-password pair or user is disabled.`},
		{name: "no password", env: []string{"REDIS_PASSWORD="},
			want: `redis at standalone %[1]s db=0 user="" password=none tls=false: Redis requires a password: set REDIS_PASSWORD (and REDIS_USERNAME for an ACL user): register claim on events: NOAUTH Authentication required.`},
		{name: "plaintext client, TLS server", tls: true, retry: true,
			want: `redis at standalone %[1]s db=0 user="" password=set tls=false unreachable for 3s (REDIS_RETRY_TIMEOUT); check REDIS_ADDR and that Redis is up and reachable; TLS is off: if the server speaks only TLS, set REDIS_TLS=true: register claim on events: redis evalsha: reply lost, the command may have run: EOF`},
		{name: "TLS server, CA not trusted", tls: true, env: []string{"REDIS_TLS=true"}, retry: true,
			want: `redis at standalone %[1]s db=0 user="" password=set tls=true unreachable for 3s (REDIS_RETRY_TIMEOUT); the server's TLS certificate is not trusted: set REDIS_TLS_CA_FILE to the CA that signed it, or check REDIS_TLS: register claim on events: TLS handshake with %[1]s: tls: failed to verify certificate: x509: certificate signed by unknown authority`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []redistest.Option
			if tc.tls {
				opts = append(opts, redistest.WithTLS())
			}
			f := newFixture(t, 30*time.Second, opts...)
			p := f.start(t, append(tc.env, "REDIS_RETRY_TIMEOUT=3s")...)
			if code := p.wait(t, 60*time.Second); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, p.out.String())
			}
			if retried := len(p.lines(t, "redis unreachable while claiming; retrying")) == 1; retried != tc.retry {
				t.Errorf("retried = %t, want %t; output:\n%s", retried, tc.retry, p.out.String())
			}
			if got, want := p.failedLine(t), fmt.Sprintf(tc.want, f.srv.Addr); got != want {
				t.Errorf("error\n got %s\nwant %s", got, want)
			}
			for _, secret := range []string{"s3cret", wrong} {
				if strings.Contains(p.out.String(), secret) {
					t.Errorf("the output shows the password %q:\n%s", secret, p.out.String())
				}
			}
		})
	}
}

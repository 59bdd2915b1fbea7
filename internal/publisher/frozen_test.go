package publisher

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// Against a frozen Redis (SIGSTOP: connections open, nothing answered)
// /readyz answers within its 2 s bound and /metrics within its 3 s: context
// deadlines bound go-redis commands (ContextTimeoutEnabled). The client's
// own timeout is a minute here, so only those deadlines can end the wait;
// Redis is resumed only after both answered (the control: they answered
// while it was frozen), and the overall limit is generous.
func TestProbesAnswerWhileRedisIsFrozen(t *testing.T) {
	srv := redistest.Start(t)
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0", "REAP_INTERVAL": "1h"})
	c.Redis.Timeout = time.Minute
	startPublisher(t, c)
	get := func(path string) (int, string, time.Duration) {
		start := time.Now()
		cl := http.Client{Timeout: 40 * time.Second}
		resp, err := cl.Get("http://" + c.HTTPAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v (Redis frozen)", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	if code, body, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz before the freeze: %d %s", code, body)
	}
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	rcode, rbody, rtook := get("/readyz")
	mcode, mbody, mtook := get("/metrics")
	srv.Resume()
	resumed = true
	if rcode != 503 || !strings.HasPrefix(rbody, "redis unreachable: ping redis: ") {
		t.Errorf("/readyz while frozen: %d %q, want 503 redis unreachable", rcode, rbody)
	}
	if mcode != 200 || !strings.Contains(mbody, "\nredis_keda_redis_up{queue=\"events\"} 0\n") {
		t.Errorf("/metrics while frozen: %d, want redis_keda_redis_up{queue=\"events\"} 0:\n%s", mcode, mbody)
	}
	t.Logf("Redis frozen: /readyz answered in %v (bound 2s), /metrics in %v (bound 3s)", rtook.Round(time.Millisecond), mtook.Round(time.Millisecond))
}

package publisher

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/redistest"
)

// The publisher serves the dashboard on UI_ADDR, and its reaper's runs are
// recorded in Redis for the dashboard's overview.
func TestPublisherServesDashboard(t *testing.T) {
	srv := redistest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uiAddr := l.Addr().String()
	l.Close()
	c := testConfig(t, srv, map[string]string{"BATCH_SIZE": "0", "UI_ADDR": uiAddr})
	startPublisher(t, c)
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var code int
		code, body = get("http://" + uiAddr + "/")
		if code == 200 && !strings.Contains(body, `id="run-reaper">never recorded`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard at %s: %d, reaper run never recorded:\n%s", uiAddr, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, `<td class="count" id="count-pending">0</td>`) || !strings.Contains(body, ` ago)</td>`) {
		t.Errorf("overview lacks the pending count or the reaper's run:\n%s", body)
	}
	req, _ := http.NewRequest("GET", "http://"+uiAddr+"/", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("dashboard with Host attacker.example = %d, want 403", resp.StatusCode)
	}
}

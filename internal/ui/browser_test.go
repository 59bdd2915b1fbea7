package ui_test

// Browser tests: headless Chromium (Debian's chromium, driven by chromedp)
// against the real binary (`redis-keda ui`, built once by testbin) and a
// real redis-server (redistest). They skip only when chromium is absent;
// CI installs it (scripts/deps.sh). Set UI_SCREENSHOTS=DIR to keep the
// screenshots (the README's come from reports/).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis-keda/redis-keda/internal/testbin"
	"github.com/redis-keda/redis-keda/queue"
)

var bin string

func TestMain(m *testing.M) {
	testbin.Main(m, "redis-keda", "../../cmd/redis-keda", &bin)
}

// bed is a redis-server, a queue on it and a running `redis-keda ui`.
type bed struct {
	t      *testing.T
	srv    *redistest.Server
	q      *queue.Queue
	env    []string
	url    string // http://127.0.0.1:PORT/
	output *syncBuffer
}

const leaseForTests = "60s"

func newBed(t *testing.T) *bed {
	t.Helper()
	srv := redistest.Start(t)
	addr := srv.Client().Options().Addr
	q, err := queue.New(srv.Client(), queue.Config{Name: "events", LeaseDuration: time.Minute, MaxAttempts: 1,
		MaxWait: time.Hour, MaxPayloadBytes: 2 << 20, DoneMaxRecords: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return &bed{t: t, srv: srv, q: q, env: []string{"REDIS_ADDR=" + addr, "LEASE_DURATION=" + leaseForTests,
		"MAX_ATTEMPTS=1", "MAX_PAYLOAD_BYTES=2097152"}}
}

// start runs `redis-keda ui --addr 127.0.0.1:0 args...` with the bed's
// environment and extra, and waits for the URL it prints.
func (b *bed) start(extra []string, args ...string) {
	t := b.t
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ui", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, b.env...), extra...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.output = &syncBuffer{}
	cmd.Stderr = b.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("redis-keda ui printed no URL: %v; stderr: %s", err, b.output)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("redis-keda ui printed %q, want its URL", line)
	}
	b.url = strings.TrimSpace(line[i:])
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
}

// syncBuffer is the process's stderr, written by exec's copying goroutine
// and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// browser starts headless Chromium; dialogs counts every JavaScript dialog
// a page of it opened (each is dismissed).
func browser(t *testing.T) (ctx context.Context, dialogs *atomic.Int32) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium; scripts/deps.sh does): browser tests skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, no timeout (see chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	dialogs = &atomic.Int32{}
	evs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range evs {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, dialogs
}

// do runs steps with a bound.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(chromedp.CSS(css)))
}

func eval[T any](t *testing.T, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[T](js, opts...))
}

// screenshot keeps a PNG of the page in UI_SCREENSHOTS, when set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// seed puts events in every state: pending, in flight (leased, a minute),
// dead; and acks one, so that the counters are not all zero.
func (b *bed) seed(pending int, dead ...string) {
	t := b.t
	ctx := context.Background()
	for _, p := range dead {
		if err := b.q.PublishRaw(ctx, []byte(p)); err != nil {
			t.Fatal(err)
		}
		d := b.claim()
		if _, err := b.q.Nack(ctx, d, "the handler failed: <b>boom</b>"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.q.PublishRaw(ctx, []byte(`{"id":"acked-1","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.q.Ack(ctx, b.claim()); err != nil {
		t.Fatal(err)
	}
	if err := b.q.PublishRaw(ctx, []byte(`{"id":"inflight-1","wait":1}`)); err != nil {
		t.Fatal(err)
	}
	b.claim() // stays in flight (LEASE_DURATION 60s)
	for i := range pending {
		if err := b.q.PublishRaw(ctx, fmt.Appendf(nil, `{"id":"p-%d","wait":1,"published_at":"%s","order":{"sku":"A-%d","qty":%d}}`,
			i, time.Now().UTC().Format(time.RFC3339Nano), i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
}

// claim takes the next event: seed calls it on a queue holding only the
// event it just published (its pending events come last).
func (b *bed) claim() *queue.Delivery {
	b.t.Helper()
	d, err := b.q.Claim(context.Background(), 10*time.Second)
	if err != nil {
		b.t.Fatal(err)
	}
	return d
}

func (b *bed) cli(args ...string) string {
	b.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, b.env...)
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("redis-keda %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// The overview's numbers are `redis-keda stats --json`'s, read a moment
// apart from an idle queue.
func TestBrowserOverviewEqualsStats(t *testing.T) {
	b := newBed(t)
	b.seed(0, `{"id":"dead-1","wait":1}`, `{"id":"dead-2","wait":1}`)
	for i := range 7 {
		if err := b.q.PublishRaw(context.Background(), fmt.Appendf(nil, `{"id":"p-%d","wait":1}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if _, err := b.q.PublishIn(context.Background(), time.Hour, queue.Event{ID: fmt.Sprintf("s-%d", i), Wait: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	b.start(nil)
	var st struct {
		Scheduled, Pending, Processing, Dead int64
		Counters                             map[string]int64
	}
	if err := json.Unmarshal([]byte(b.cli("stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Scheduled != 4 || st.Pending != 7 || st.Processing != 1 || st.Dead != 2 || st.Counters["acked"] != 1 {
		t.Fatalf("control: stats = %+v, want 4 scheduled, 7 pending, 1 in flight, 2 dead, 1 acked", st)
	}
	ctx, dialogs := browser(t)
	do(t, ctx, chromedp.Navigate(b.url))
	scheduled, pending, processing, dead := text(t, ctx, "#count-scheduled"), text(t, ctx, "#count-pending"), text(t, ctx, "#count-processing"), text(t, ctx, "#count-dead")
	counters := map[string]string{}
	for name := range st.Counters {
		counters[name] = text(t, ctx, "#counter-"+name)
	}
	got := fmt.Sprintf("%s %s %s %s", scheduled, pending, processing, dead)
	if want := fmt.Sprintf("%d %d %d %d", st.Scheduled, st.Pending, st.Processing, st.Dead); got != want {
		t.Errorf("overview scheduled/pending/in flight/dead = %s, stats --json = %s", got, want)
	}
	if done := text(t, ctx, "#count-done"); done != "1" {
		t.Errorf("overview done records = %s, want 1 (acked-1)", done)
	}
	for name, n := range st.Counters {
		if counters[name] != fmt.Sprint(n) {
			t.Errorf("overview counter %s = %q, stats --json = %d", name, counters[name], n)
		}
	}
	screenshot(t, ctx, "ui-overview.png")
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d dialogs opened", n)
	}
}

// A dead letter redriven from the dead list's page (button, confirmation,
// result) is pending again, byte for byte.
func TestBrowserRedriveByteForByte(t *testing.T) {
	b := newBed(t)
	payload := "{\"id\":\"r-1\",\"wait\":1,\"text\":\"caf\u00e9 \\u00e9 <tag> \\\"q\\\"\",\"n\":1.50}"
	b.seed(0, payload)
	b.start(nil)
	ctx, _ := browser(t)
	do(t, ctx, chromedp.Navigate(b.url+"state/dead"))
	screenshot(t, ctx, "ui-dead.png")
	do(t, ctx, chromedp.Click(chromedp.CSS(`td.info form[action="/redrive"] button`)), chromedp.WaitVisible(chromedp.CSS("#question")))
	question := text(t, ctx, "#question")
	do(t, ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#result")))
	result := text(t, ctx, "#result")
	if question != "Redrive these 1 dead letters back to pending?" {
		t.Errorf("confirmation = %q", question)
	}
	if !strings.HasPrefix(result, "1 dead letters moved back to pending (byte for byte):\nr-1 (@") {
		t.Errorf("result = %q, want 1 moved, r-1", result)
	}
	got, err := b.srv.Client().LRange(context.Background(), "events", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != payload {
		t.Errorf("pending after the redrive = %q, want [%q]", got, payload)
	}
	if n := b.srv.Client().LLen(context.Background(), "{events}:dead").Val(); n != 0 {
		t.Errorf("dead list holds %d, want 0", n)
	}
}

// Hostile payloads render as text: no dialog opens, no element of theirs
// exists in any page, and their text is shown (the control arm: a dialog
// opened by the page's own script is counted).
func TestBrowserHostilePayloadsInert(t *testing.T) {
	b := newBed(t)
	long := `{"id":"long","wait":1,"line":"` + strings.Repeat("A", 1<<20) + `"}`
	hostile := []string{
		`{"id":"x-script","wait":1,"html":"<script>alert(1)</script>"}`,
		`<script>alert(2)</script><img src=x onerror=alert(3)>`,
		`<a href="javascript:alert(4)" id="evil-link">click</a><svg onload=alert(5)></svg>`,
		"\xff\xfe<script>alert(6)</script>\x00\x1b[2J",
		`{"id":"</pre><iframe src=javascript:alert(7)></iframe>","wait":1}`,
		"\u202e<b onmouseover=alert(8)>rtl</b>",
		long,
	}
	// Dead letters: the JSON one failed, the others were dead-lettered as
	// invalid by the claim; then all of them pending, pushed as they are.
	b.seed(0, hostile[0])
	rdb := b.srv.Client()
	for _, p := range hostile[1:4] {
		if err := rdb.LPush(context.Background(), "events", p).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.q.Claim(context.Background(), 10*time.Second); !errors.Is(err, queue.ErrInvalidEvent) {
			t.Fatalf("claim of %q = %v, want ErrInvalidEvent (dead-lettered)", p, err)
		}
	}
	for _, p := range hostile {
		if err := rdb.LPush(context.Background(), "events", p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b.start(nil)
	ctx, dialogs := browser(t)
	pages := []string{"", "state/pending", "state/dead", "state/processing", "find?q=" + url.QueryEscape("<script>"),
		"find?q=" + url.QueryEscape("javascript:"), "find?q=" + url.QueryEscape(`"><img src=x onerror=alert(9)>`)}
	for _, p := range pages {
		do(t, ctx, chromedp.Navigate(b.url+p), chromedp.WaitReady(chromedp.CSS("main")),
			chromedp.Sleep(300*time.Millisecond)) // an injected handler would have fired
		count := func(css string) int {
			return eval[int](t, ctx, `document.querySelectorAll(`+strconvQuote(css)+`).length`)
		}
		scripts, imgs, iframes := count("script"), count("img"), count("iframe")
		jsLinks, svgs, evil := count(`a[href^="javascript"]`), count("main svg:not(.chart), b, #evil-link"), count("[onerror],[onload],[onmouseover]")
		text := text(t, ctx, "main")
		if scripts != 1 || imgs != 0 || iframes != 0 || jsLinks != 0 || svgs != 0 || evil != 0 {
			t.Errorf("/%s: %d scripts (want 1: app.js), %d img, %d iframe, %d javascript: links, %d svg/b/#evil-link, %d on* attributes (want 0)",
				p, scripts, imgs, iframes, jsLinks, svgs, evil)
		}
		if strings.HasPrefix(p, "state/pending") {
			for _, want := range []string{`"html": "<script>alert(1)</script>"`, `<script>alert(2)</script><img src=x onerror=alert(3)>`,
				`\u202e<b onmouseover=alert(8)>rtl</b>`, "ff fe 3c 73 63 72 69 70", "showing the first 4.0 KiB"} {
				if !strings.Contains(text, want) {
					t.Errorf("/%s does not show %q as text", p, want)
				}
			}
			screenshot(t, ctx, "ui-hostile.png")
		}
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened, want 0", n)
	}
	// Control arm: the listener does see a dialog (opened by the test).
	do(t, ctx, chromedp.Navigate("about:blank"))
	_ = eval[int](t, ctx, `setTimeout(() => alert("control"), 0); 1`)
	do(t, ctx, chromedp.Sleep(500*time.Millisecond))
	if n := dialogs.Load(); n != 1 {
		t.Errorf("control: %d dialogs counted after one alert, want 1", n)
	}
}

// httpDo sends a request to the bed's server with the given Host.
func (b *bed) httpDo(method, path, host string, form url.Values, header map[string]string) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.url+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// csrfOf reads the CSRF token from a page.
func csrfOf(t *testing.T, html string) string {
	t.Helper()
	const m = `name="csrf" value="`
	i := strings.Index(html, m)
	if i < 0 {
		t.Fatalf("no CSRF token in the page")
	}
	return html[i+len(m) : i+len(m)+64]
}

// Read-only: no button but Find in any page, and a hand-made POST (with the
// token a writable dashboard would want) is refused; nothing changes.
func TestBrowserReadOnlyRefusesPOST(t *testing.T) {
	b := newBed(t)
	b.seed(2, `{"id":"d","wait":1}`)
	b.start(nil, "--read-only")
	ctx, _ := browser(t)
	for _, p := range []string{"", "state/pending", "state/dead", "state/processing", "find?q=d"} {
		do(t, ctx, chromedp.Navigate(b.url+p))
		buttons := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("button")).map(b => b.textContent)`)
		badge := text(t, ctx, "#read-only")
		if len(buttons) != 1 || buttons[0] != "Find" || badge != "read-only" {
			t.Errorf("/%s: buttons %q, badge %q; want only [Find] and the read-only badge", p, buttons, badge)
		}
	}
	// A POST from the page itself (same origin), as a user could hand-make.
	do(t, ctx, chromedp.Navigate(b.url+"state/dead"))
	status := eval[int](t, ctx,
		`fetch("/purge", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "state=dead&confirm=1"}).then(r => r.status)`,
		chromedp.EvalAwaitPromise)
	if status != http.StatusForbidden {
		t.Errorf("POST /purge from the page = %d, want 403", status)
	}
	code, body := b.httpDo("POST", "/purge", "", url.Values{"state": {"dead"}, "confirm": {"1"}, "csrf": {strings.Repeat("0", 64)}}, nil)
	if code != http.StatusForbidden || body != "403 forbidden: the dashboard is read-only (UI_READ_ONLY)\n" {
		t.Errorf("POST /purge = %d %q, want 403 read-only", code, body)
	}
	if n := b.srv.Client().LLen(context.Background(), "{events}:dead").Val(); n != 1 {
		t.Errorf("dead list holds %d after the refused purges, want 1", n)
	}
}

// Refusals, against the real binary: a POST without (or with a wrong) CSRF
// token, a wrong Host (DNS rebinding), a cross-origin POST; with
// authentication set, every request without it; and no credential in any
// page, header or log line.
func TestSecurityRefusals(t *testing.T) {
	b := newBed(t)
	b.seed(1, `{"id":"d","wait":1}`)
	const password, token = "s3cret-Pa55", "tok-9f8e7d6c5b4a"
	secretFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(secretFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start([]string{"UI_USERNAME=ops", "UI_PASSWORD_FILE=" + secretFile, "UI_TOKEN=" + token})
	basic := map[string]string{"Authorization": "Basic " + basicAuth("ops", password)}
	code, page := b.httpDo("GET", "/state/dead", "", nil, basic)
	if code != http.StatusOK {
		t.Fatalf("control: GET with basic auth = %d", code)
	}
	csrf := csrfOf(t, page)
	cases := []struct {
		name, method, path, host string
		form                     url.Values
		header                   map[string]string
		code                     int
		body                     string
	}{
		{"no credentials", "GET", "/", "", nil, nil, 401, "401 unauthorized: the dashboard requires authentication\n"},
		{"wrong password", "GET", "/", "", nil, map[string]string{"Authorization": "Basic " + basicAuth("ops", "nope")}, 401, "401 unauthorized: the dashboard requires authentication\n"},
		{"wrong user", "GET", "/", "", nil, map[string]string{"Authorization": "Basic " + basicAuth("root", password)}, 401, "401 unauthorized: the dashboard requires authentication\n"},
		{"wrong token", "GET", "/", "", nil, map[string]string{"Authorization": "Bearer nope"}, 401, "401 unauthorized: the dashboard requires authentication\n"},
		{"bearer token", "GET", "/static/app.js", "", nil, map[string]string{"Authorization": "Bearer " + token}, 200, ""},
		{"wrong Host", "GET", "/", "rebind.attacker.example:80", nil, basic, 403,
			"403 forbidden: this Host is not allowed (DNS rebinding guard); add it to UI_ALLOWED_HOSTS if you expose the dashboard under that name\n"},
		{"wrong Host, localhost's IP as a name prefix", "GET", "/", "127.0.0.1.nip.io", nil, basic, 403,
			"403 forbidden: this Host is not allowed (DNS rebinding guard); add it to UI_ALLOWED_HOSTS if you expose the dashboard under that name\n"},
		{"POST without CSRF token", "POST", "/purge", "", url.Values{"state": {"dead"}, "confirm": {"1"}}, basic, 403,
			"403 forbidden: missing or wrong CSRF token; reload the page and try again\n"},
		{"POST with a wrong CSRF token", "POST", "/purge", "", url.Values{"state": {"dead"}, "confirm": {"1"}, "csrf": {strings.Repeat("a", 64)}}, basic, 403,
			"403 forbidden: missing or wrong CSRF token; reload the page and try again\n"},
		{"cross-origin POST with the token", "POST", "/purge", "", url.Values{"state": {"dead"}, "confirm": {"1"}, "csrf": {csrf}},
			map[string]string{"Authorization": basic["Authorization"], "Origin": "https://attacker.example"}, 403, "403 forbidden: cross-origin request\n"},
		{"POST with the token, unconfirmed: a confirmation", "POST", "/purge", "", url.Values{"state": {"dead"}, "csrf": {csrf}}, basic, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := b.httpDo(tc.method, tc.path, tc.host, tc.form, tc.header)
			if code != tc.code || (tc.body != "" && body != tc.body) {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
			}
			if strings.Contains(body, password) || strings.Contains(body, token) {
				t.Errorf("the response shows a credential")
			}
		})
	}
	if n := b.srv.Client().LLen(context.Background(), "{events}:dead").Val(); n != 1 {
		t.Errorf("dead list holds %d after the refused POSTs, want 1", n)
	}
	// The confirmed POST does purge (control arm of the refusals above).
	code, body := b.httpDo("POST", "/purge", "", url.Values{"state": {"dead"}, "confirm": {"1"}, "csrf": {csrf}}, basic)
	if code != 200 || !strings.Contains(body, "1 entries deleted from dead.") {
		t.Errorf("confirmed purge = %d %q", code, body)
	}
	if strings.Contains(b.output.String(), password) || strings.Contains(b.output.String(), token) {
		t.Errorf("the log shows a credential")
	}
	if !strings.Contains(b.output.String(), `"Host not allowed`) && !strings.Contains(b.output.String(), "Host not allowed") {
		t.Errorf("control: the log does not show the refused Host: %s", b.output.String())
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

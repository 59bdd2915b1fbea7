package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis-keda/redis-keda/internal/acldoc"
	"github.com/redis-keda/redis-keda/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// aclCommands returns the ACL SETUSER commands that k8s/README.md documents,
// one per user, with the password placeholders replaced.
func aclCommands(t *testing.T, passwords map[string]string) map[string][]any {
	t.Helper()
	users, err := acldoc.ReadFile("../k8s/README.md", "redis-keda", "keda")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]any{}
	for name, words := range users {
		args := []any{"ACL", "SETUSER"}
		for _, w := range words {
			for ph, pw := range passwords {
				w = strings.ReplaceAll(w, ph, pw)
			}
			args = append(args, w)
		}
		out[name] = args
	}
	return out
}

// The ACL users documented in k8s/README.md are enough: the application user
// runs every transition of the queue, and KEDA's user runs the scaler's
// EVAL of TYPE + LLEN (kedacore/keda pkg/scalers/redis_scaler.go).
func TestDocumentedACLUsersSuffice(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	cmds := aclCommands(t, map[string]string{"APP_PASSWORD": "app-pw", "KEDA_PASSWORD": "keda-pw"})
	if len(cmds) != 2 || cmds["redis-keda"] == nil || cmds["keda"] == nil {
		t.Fatalf("k8s/README.md should document the users redis-keda and keda; found %v", cmds)
	}
	for _, args := range cmds {
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}

	app := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "redis-keda", Password: "app-pw"})
	defer app.Close()
	q, _ := newQueueOn(t, app, func(c *Config) { c.MaxAttempts = 2; c.DoneMaxRecords, c.DoneMaxAge = 1, time.Millisecond })
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the documented app user: %v", what, err)
		}
	}
	// Done records: written (and, DONE_MAX_RECORDS 1, trimmed) by acks,
	// read by Inspect and DoneRecords.
	for _, id := range []string{"d1", "d2"} {
		must("publish raw", q.PublishRaw(ctx, []byte(`{"id":"`+id+`","wait":1}`)))
		d, err := q.Claim(ctx, time.Second)
		must("claim", err)
		must("ack", q.Ack(ctx, d))
		_, err = q.Inspect(ctx, mustID(t, id))
		must("inspect of a done event", err)
	}
	if recs, err := q.DoneRecords(ctx, 10); err != nil || len(recs) != 1 || recs[0].ID != "d2" {
		t.Fatalf("done records as the documented app user: %+v, %v; want d2 alone", recs, err)
	}
	_, err := q.Publish(ctx, Event{Wait: time.Second}, Event{Wait: time.Second})
	must("publish", err)
	must("publish raw", q.PublishRaw(ctx, []byte(`{"wait": 1}`), []byte(`bad`)))
	d, err := q.Claim(ctx, time.Second)
	must("claim", err)
	must("heartbeat", q.Heartbeat(ctx, d))
	must("ack", q.Ack(ctx, d))
	d, err = q.Claim(ctx, time.Second)
	must("claim", err)
	_, err = q.Nack(ctx, d, "x")
	must("nack", err)
	d, err = q.Claim(ctx, time.Second)
	must("claim", err)
	must("release", q.Release(ctx, d))
	_, err = q.Claim(ctx, time.Second) // abandoned: the reaper takes it back
	must("claim", err)
	orphan(t, q, time.Second) // as the app user: a claim whose job died before the lease
	time.Sleep(1100 * time.Millisecond)
	r, err := q.Reap(ctx)
	must("reap", err)
	if r.Requeued+r.Dead != 1 || r.Rescued != 1 {
		t.Errorf("reap = %+v, want one expired and one rescued", r)
	}
	_, err = q.Stats(ctx)
	must("stats", err)
	_, err = q.DeadLetters(ctx, 10)
	must("dead letters", err)
	_, err = q.Claim(ctx, time.Second) // the invalid payload: dead-lettered
	if !errors.Is(err, ErrInvalidEvent) {
		must("claim of a bad payload", err)
	}
	// Claim interrupted mid-wait: the entry goes back.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := q.Claim(cctx, time.Second); !errors.Is(err, ErrClaimInterrupted) || errors.Unwrap(err) != nil {
		must("interrupted claim", err)
	}

	keda := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "keda", Password: "keda-pw"})
	defer keda.Close()
	// KEDA's client PINGs first, then runs its scaler script
	// (pkg/scalers/redis_scaler.go).
	if err := keda.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING as the documented keda user: %v", err)
	}
	n, err := keda.Eval(ctx, `local listType = redis.call('type', KEYS[1])["ok"]
if listType == "list" then return redis.call('llen', KEYS[1]) elseif listType == "none" then return 0 end
return -1`, []string{"events"}).Int64()
	if err != nil || n < 0 {
		t.Fatalf("KEDA's list-length script as the documented keda user: %d, %v", n, err)
	}
	if err := keda.LPush(ctx, "events", "x").Err(); err == nil {
		t.Error("the keda user can write: the documented ACL is wider than KEDA needs")
	}
}

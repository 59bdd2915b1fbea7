package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecodeEvent(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		want    Event
		err     string // substring of the error; "" = valid
	}{
		{"poc event unchanged", `{"wait": 17}`, Event{Wait: 17 * time.Second}, ""},
		{"fraction", `{"wait": 0.25}`, Event{Wait: 250 * time.Millisecond}, ""},
		{"zero", `{"wait":0}`, Event{}, ""},
		{"exponent", `{"wait": 1e1}`, Event{Wait: 10 * time.Second}, ""},
		{"publisher fields", `{"id":"e-1","published_at":"2026-11-27T10:00:00Z","wait":3}`,
			Event{ID: "e-1", Wait: 3 * time.Second, PublishedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}, ""},
		{"numeric id", `{"id": 42, "wait": 1}`, Event{ID: "42", Wait: time.Second}, ""},
		{"null id", `{"id": null, "wait": 1}`, Event{Wait: time.Second}, ""},
		{"extra fields ignored", `{"wait": 2, "owner": {"team": "x"}, "tags": [1,2]}`, Event{Wait: 2 * time.Second}, ""},
		{"bad published_at ignored", `{"wait": 2, "published_at": "yesterday"}`, Event{Wait: 2 * time.Second}, ""},
		{"at MAX_WAIT", `{"wait": 3600}`, Event{Wait: time.Hour}, ""},
		{"above MAX_WAIT", `{"wait": 3600.5}`, Event{}, "above MAX_WAIT"},
		{"missing wait", `{"id":"x"}`, Event{}, `missing field "wait"`},
		{"string wait", `{"wait":"17"}`, Event{}, "not a number"},
		{"bool wait", `{"wait":true}`, Event{}, "not a number"},
		{"negative", `{"wait":-3}`, Event{}, "negative"},
		{"huge", `{"wait":1e400}`, Event{}, "not a finite number"},
		{"empty id", `{"wait":1,"id":""}`, Event{}, `field "id"`},
		{"array id", `{"wait":1,"id":[1]}`, Event{}, `field "id"`},
		{"not json", `hello`, Event{}, "not a JSON object"},
		{"truncated", `{"wait":`, Event{}, "not valid JSON"},
		{"blank", "  \n", Event{}, "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeEvent([]byte(tc.payload), time.Hour)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if got.ID != tc.want.ID || got.Wait != tc.want.Wait || !got.PublishedAt.Equal(tc.want.PublishedAt) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want ErrInvalidEvent containing %q", err, tc.err)
			}
		})
	}
}

func TestEventMarshalRoundTrip(t *testing.T) {
	ev := Event{ID: "a\"b", Wait: 1500 * time.Millisecond, PublishedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	got, err := DecodeEvent(ev.Marshal(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != ev {
		t.Errorf("round trip %+v -> %s -> %+v", ev, ev.Marshal(), got)
	}
	if s := string(Event{Wait: 17 * time.Second}.Marshal()); s != `{"wait":17}` {
		t.Errorf("marshal = %s, want the PoC's form", s)
	}
}

// FuzzDecodeEvent: the decoder never panics and accepts only what it can
// process; whatever it is given, the envelope the queue wraps around it gives
// back the same bytes.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"wait": 17}`, `{"wait":0.5,"id":"x"}`, `{"wait":-1}`, `{"wait":"1"}`, `[]`, `null`, `{"wait":1e308}`,
		`{"id":1,"wait":2,"published_at":"2026-01-01T00:00:00Z"}`, `{"wait":3,"wait":4}`, `{"wait":1,"x":{"y":[1,"\u00e9"]}}`,
		"rkq1 {\"attempts\":1}\n{\"wait\":1}", "{\"wait\":1,\"s\":\"\xff<&>\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := parseEvent(payload, time.Hour)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
			var inv *InvalidEventError
			if !errors.As(err, &inv) || inv.Reason == "" {
				t.Fatalf("error %v has no reason", err)
			}
		} else if ev.Wait < 0 || ev.Wait > time.Hour {
			t.Fatalf("accepted wait %v outside [0, MAX_WAIT]", ev.Wait)
		}
		env := envelope(envelopeHeader{ID: "fuzz-id", Assigned: true, Attempts: 2}, payload)
		h, p, off, err := splitEntry(string(env))
		if err != nil || p != string(payload) || h.Attempts != 2 || h.ID != "fuzz-id" || string(env[off:]) != string(payload) {
			t.Fatalf("envelope round trip of %q: %+v %q %d %v", payload, h, p, off, err)
		}
		rec, err := parseDeadLetter(string(deadRecord("x", "r", 1, payload)))
		if err != nil || string(rec.Payload) != string(payload) || !utf8.Valid([]byte(rec.Record)) {
			t.Fatalf("dead letter round trip of %q: %q %v", payload, rec.Payload, err)
		}
	})
}

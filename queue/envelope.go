package queue

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// The queue never edits an event's bytes. What it needs to remember about a
// delivery travels beside the payload, in three formats:
//
// Envelope — a pending entry for an event that has been delivered before
// (retried, released, or recovered by the reaper):
//
//	rkq1 {"id":"p1f2e3d4-9a8b7c6d","assigned":true,"attempts":2}\n<payload bytes>
//
// "rkq1 " marks it, the JSON header ends at the first newline, and everything
// after it is the producer's payload exactly. attempts counts the deliveries
// so far (the next claim is attempts+1), so every redelivery chain has its own
// count and nothing is shared with another event of the same id. id is the
// event id the queue assigned when the payload had none (assigned: true), or
// the payload's own id. A first delivery is the producer's raw payload.
//
// Header — element 0 of a claim list once leased (element 1 is the entry as
// it came from pending, envelope or not):
//
//	{"attempt":1,"off":0,"utf8":true,"assigned":false,"id":"…","token":"…","claimed_at":"…","size":13}
//
// off is where the payload starts inside element 1, size its length, utf8
// whether it is valid UTF-8 (so scripts know how to dead-letter it).
//
// Dead letter — an entry of the dead list, one JSON object:
//
//	{"id":"…","reason":"…","attempts":3,"dead_at":"2026-11-28T03:00:00Z","size":13,"payload":"{\"wait\": 17}"}
//
// payload is the payload as a JSON string when it is valid UTF-8; otherwise
// the record has "payload_base64" (standard base64) instead. Either way the
// bytes decode to exactly what the producer sent.

// envelopeMagic starts every envelope.
const envelopeMagic = "rkq1 "

// envelopeHeader is the JSON header of an envelope.
type envelopeHeader struct {
	ID       string `json:"id,omitempty"`
	Assigned bool   `json:"assigned,omitempty"`
	Attempts int    `json:"attempts"`
}

// splitEntry separates a pending entry into its envelope header (zero for a
// raw payload) and the payload. off is where the payload starts in entry. A
// malformed envelope is an error (the entry is then dead-lettered whole).
func splitEntry(entry string) (h envelopeHeader, payload string, off int, err error) {
	if len(entry) < len(envelopeMagic) || entry[:len(envelopeMagic)] != envelopeMagic {
		return h, entry, 0, nil
	}
	nl := bytes.IndexByte([]byte(entry[len(envelopeMagic):min(len(entry), len(envelopeMagic)+4096)]), '\n')
	if nl < 0 {
		return h, entry, 0, fmt.Errorf("entry starts with %q but has no header line; only the queue writes envelopes", envelopeMagic)
	}
	end := len(envelopeMagic) + nl
	if err := json.Unmarshal([]byte(entry[len(envelopeMagic):end]), &h); err != nil || h.Attempts < 0 {
		return envelopeHeader{}, entry, 0, fmt.Errorf("entry starts with %q but its header is not valid (%v); only the queue writes envelopes", envelopeMagic, err)
	}
	return h, entry[end+1:], end + 1, nil
}

// envelope wraps payload with header h.
func envelope(h envelopeHeader, payload []byte) []byte {
	hj := mustJSON(h)
	out := make([]byte, 0, len(envelopeMagic)+len(hj)+1+len(payload))
	out = append(out, envelopeMagic...)
	out = append(out, hj...)
	out = append(out, '\n')
	return append(out, payload...)
}

// deliveryHeader is element 0 of a leased claim list.
type deliveryHeader struct {
	Attempt   int    `json:"attempt"`
	Off       int    `json:"off"`
	UTF8      bool   `json:"utf8"`
	Assigned  bool   `json:"assigned"`
	ID        string `json:"id"`
	Token     string `json:"token"`
	ClaimedAt string `json:"claimed_at"`
	Size      int    `json:"size"`
}

// DeadLetter is one record of the dead-letter list.
type DeadLetter struct {
	ID       string    `json:"id,omitempty"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	DeadAt   time.Time `json:"dead_at"`
	// Size is the payload's length in bytes.
	Size int `json:"size"`
	// Payload is the event exactly as the producer sent it.
	Payload []byte `json:"-"`
	// Record is the dead list's entry as stored (JSON), for removing it.
	Record string `json:"-"`
}

// deadRecordJSON is the stored form: payload as a string when valid UTF-8,
// else payload_base64.
type deadRecordJSON struct {
	ID            string  `json:"id,omitempty"`
	Reason        string  `json:"reason"`
	Attempts      int     `json:"attempts"`
	DeadAt        string  `json:"dead_at"`
	Size          int     `json:"size"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
}

// deadRecord renders a dead letter for the dead list. It escapes only what
// JSON requires (no HTML escaping), so a text payload reads as it was sent.
func deadRecord(id, reason string, attempts int, payload []byte) []byte {
	rec := deadRecordJSON{ID: id, Reason: reason, Attempts: attempts, DeadAt: nowRFC3339(), Size: len(payload)}
	if utf8.Valid(payload) {
		s := string(payload)
		rec.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(payload)
		rec.PayloadBase64 = &s
	}
	return encodeJSON(rec)
}

// deadRecordPrefix is a dead letter without its payload field and closing
// brace, for a payload of size bytes that only Redis holds: the script
// appends it (luaPrelude's dead_record_from_prefix).
func deadRecordPrefix(id, reason string, attempts, size int) string {
	b := encodeJSON(deadRecordJSON{ID: id, Reason: reason, Attempts: attempts, DeadAt: nowRFC3339(), Size: size})
	return string(b[:len(b)-1])
}

// encodeJSON is compact JSON without HTML escaping.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("queue: encode %T: %v", v, err)) // strings, ints and bools only
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// parseDeadLetter reads a stored dead letter.
func parseDeadLetter(record string) (DeadLetter, error) {
	var r deadRecordJSON
	if err := json.Unmarshal([]byte(record), &r); err != nil {
		return DeadLetter{Record: record}, fmt.Errorf("dead letter is not JSON: %w", err)
	}
	dl := DeadLetter{ID: r.ID, Reason: r.Reason, Attempts: r.Attempts, Size: r.Size, Record: record}
	dl.DeadAt, _ = time.Parse(time.RFC3339Nano, r.DeadAt)
	switch {
	case r.Payload != nil:
		dl.Payload = []byte(*r.Payload)
	case r.PayloadBase64 != nil:
		p, err := base64.StdEncoding.DecodeString(*r.PayloadBase64)
		if err != nil {
			return dl, fmt.Errorf("dead letter payload_base64: %w", err)
		}
		dl.Payload = p
	default:
		return dl, fmt.Errorf("dead letter has neither payload nor payload_base64")
	}
	return dl, nil
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// luaPrelude is prepended to every script that moves payloads: the same
// helpers, so the Go and Lua sides write the formats above identically.
//
// now_ms()                       Redis server time, Unix ms
// finished(key, member)          a live finished marker (see finishedKey)
// mark_finished(key, member, ms) set one, pruning up to two expired ones
// split_entry(e)                 envelope header table (or nil) and payload
// envelope(h, payload)           "rkq1 " .. json(h) .. "\n" .. payload
// utf8_valid(s)                  exact UTF-8 check (C-speed gsub passes)
// base64(s)                      standard base64 (C-speed gsub passes)
// dead_record(fields, payload, is_utf8)  the dead-letter JSON
const luaPrelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split_entry(e)
  if string.sub(e, 1, 5) == 'rkq1 ' then
    local nl = string.find(e, '\n', 6, true)
    if nl then
      local ok, h = pcall(cjson.decode, string.sub(e, 6, nl - 1))
      if ok and type(h) == 'table' then return h, string.sub(e, nl + 1) end
    end
  end
  return nil, e
end
local function finished(key, member)
  local s = redis.call('ZSCORE', key, member)
  return s and tonumber(s) > now_ms()
end
local function mark_finished(key, member, ttl)
  local now = now_ms()
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, 2)
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
  redis.call('ZADD', key, now + tonumber(ttl), member)
end
local function envelope(h, payload)
  return 'rkq1 ' .. cjson.encode(h) .. '\n' .. payload
end
local function utf8_valid(s)
  if not string.find(s, '[\128-\255]') then return true end
  local t = string.gsub(s, '[\240-\244][\128-\191][\128-\191][\128-\191]', function(c)
    local b1, b2 = string.byte(c, 1, 2)
    if (b1 == 240 and b2 < 144) or (b1 == 244 and b2 > 143) then return nil end
    return 'A'
  end)
  t = string.gsub(t, '[\224-\239][\128-\191][\128-\191]', function(c)
    local b1, b2 = string.byte(c, 1, 2)
    if (b1 == 224 and b2 < 160) or (b1 == 237 and b2 > 159) then return nil end
    return 'A'
  end)
  t = string.gsub(t, '[\194-\223][\128-\191]', 'A')
  return not string.find(t, '[\128-\255]')
end
local function base64(s)
  local abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  local hex, pair = {}, {}
  for i = 0, 255 do hex[string.char(i)] = string.format('%02x', i) end
  for i = 0, 4095 do
    local a, b = math.floor(i / 64), i % 64
    pair[string.format('%03x', i)] = string.sub(abc, a + 1, a + 1) .. string.sub(abc, b + 1, b + 1)
  end
  local n = #s - #s % 3
  local out = string.gsub(string.gsub(string.sub(s, 1, n), '.', hex), '...', pair)
  local r = #s - n
  if r > 0 then
    local b1, b2 = string.byte(s, n + 1, n + 2)
    local v = b1 * 65536 + (b2 or 0) * 256
    local c1, c2, c3 = math.floor(v / 262144), math.floor(v / 4096) % 64, math.floor(v / 64) % 64
    out = out .. string.sub(abc, c1 + 1, c1 + 1) .. string.sub(abc, c2 + 1, c2 + 1)
    if r == 2 then out = out .. string.sub(abc, c3 + 1, c3 + 1) .. '=' else out = out .. '==' end
  end
  return out
end
local function dead_record_from_prefix(prefix, payload, is_utf8)
  if is_utf8 then
    return prefix .. ',"payload":' .. cjson.encode(payload) .. '}'
  end
  return prefix .. ',"payload_base64":"' .. base64(payload) .. '"}'
end
local function dead_record(fields, payload, is_utf8)
  fields.size = #payload
  local head = cjson.encode(fields)
  return dead_record_from_prefix(string.sub(head, 1, -2), payload, is_utf8)
end
`

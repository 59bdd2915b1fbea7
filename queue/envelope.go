package queue

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
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
//	{"attempt":1,"off":0,"utf8":true,"assigned":false,"id":"…","token":"…","claimed_at":"…","size":13,"pod":"…"}
//
// off is where the payload starts inside element 1, size its length, utf8
// whether it is valid UTF-8 (so scripts know how to dead-letter it). pod is
// the claimer's pod name (POD_NAME from the downward API; the hostname
// outside Kubernetes), at most maxPodLen bytes, left out when unknown: the
// ack script copies it into the event's done record.
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

// maxHeaderLen bounds an envelope's header line (Go and Lua alike).
const maxHeaderLen = 4096

// splitEntry separates a pending entry into its envelope header (zero for a
// raw payload) and the payload. off is where the payload starts in entry. A
// malformed envelope is an error (the entry is then dead-lettered whole).
//
// The header grammar is checked identically here and in luaPrelude's
// split_entry (TestEnvelopeGoAndLuaAgree): within maxHeaderLen bytes after
// "rkq1 " a newline; before it a JSON object with no control byte, no
// escaped UTF-16 surrogate, only the keys "attempts" (required, a whole
// number from 0 to 2147483647), "id" (a string) and "assigned" (a boolean);
// a duplicate key counts once, the last.
func splitEntry(entry string) (h envelopeHeader, payload string, off int, err error) {
	if len(entry) < len(envelopeMagic) || entry[:len(envelopeMagic)] != envelopeMagic {
		return h, entry, 0, nil
	}
	nl := strings.IndexByte(entry[len(envelopeMagic):min(len(entry), len(envelopeMagic)+maxHeaderLen)], '\n')
	if nl < 0 {
		return h, entry, 0, fmt.Errorf("entry starts with %q but has no header line; only the queue writes envelopes", envelopeMagic)
	}
	end := len(envelopeMagic) + nl
	if h, err = parseEnvelopeHeader(entry[len(envelopeMagic):end]); err != nil {
		return envelopeHeader{}, entry, 0, fmt.Errorf("entry starts with %q but its header is not valid (%v); only the queue writes envelopes", envelopeMagic, err)
	}
	return h, entry[end+1:], end + 1, nil
}

// parseEnvelopeHeader checks an envelope header's grammar (see splitEntry).
func parseEnvelopeHeader(s string) (envelopeHeader, error) {
	var h envelopeHeader
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return h, errors.New("control byte")
		}
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == 'u' && i+6 <= len(s) {
			if v, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil && v >= 0xd800 && v <= 0xdfff {
				return h, errors.New("escaped surrogate")
			}
		}
		if s[i] == '\\' {
			i++ // an escaped backslash does not start an escape
		}
	}
	t := strings.TrimLeft(s, " \t\r")
	if !strings.HasPrefix(t, "{") {
		return h, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return h, err
	}
	seen := false
	for k, v := range m {
		switch k {
		case "attempts":
			if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
				return h, errors.New(`"attempts" is not a number`)
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil || f != math.Trunc(f) || f < 0 || f > math.MaxInt32 {
				return h, errors.New(`"attempts" is not a whole number from 0 to 2147483647`)
			}
			h.Attempts, seen = int(f), true
		case "id":
			if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &h.ID) != nil {
				return h, errors.New(`"id" is not a string`)
			}
		case "assigned":
			switch string(v) {
			case "true", "false":
				h.Assigned = string(v) == "true"
			default:
				return h, errors.New(`"assigned" is not a boolean`)
			}
		default:
			return h, fmt.Errorf("unknown field %q", k)
		}
	}
	if !seen {
		return h, errors.New(`no "attempts"`)
	}
	return h, nil
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
	Pod       string `json:"pod,omitempty"`
}

// maxPodLen bounds the pod name a delivery header carries: a Kubernetes pod
// name is a DNS subdomain, at most 253 characters.
const maxPodLen = 253

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
	if dl.ID == "" {
		// Records keep an id only when the queue assigned it (the reaper's
		// never-leased and the claim's invalid-event records); an event's
		// own id is in its payload, where the job read it.
		dl.ID = payloadID(dl.Payload)
	}
	return dl, nil
}

// payloadID is a payload's own top-level "id" as the claim reads it, or ""
// (not a JSON object, no id, or an id the claim would refuse).
func payloadID(payload []byte) string {
	raw, ok := topLevel(payload, "id")
	if !ok {
		return ""
	}
	id, err := parseID(raw)
	if err != nil {
		return ""
	}
	return id
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// luaPrelude is prepended to every script that moves payloads: the same
// helpers, so the Go and Lua sides write the formats above identically.
//
// now_ms()                       Redis server time, Unix ms
// finished(key, member)          a live finished marker (see finishedKey)
// mark_finished(key, member, ms) set one, pruning up to two expired ones
// split_entry(e)                 envelope header table (or nil: not an
//
//	envelope, or not a valid one) and payload
//
// envelope(h, payload)           "rkq1 " .. json(h) .. "\n" .. payload
// utf8_valid(s)                  exact UTF-8 check (C-speed gsub passes)
// base64(s)                      standard base64 (C-speed gsub passes)
// dead_record(fields, payload, is_utf8)  the dead-letter JSON
const luaPrelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function json_number(t)
  local i = 1
  if string.sub(t, 1, 1) == '-' then i = 2 end
  local int = string.match(t, '^%d+', i)
  if not int or (#int > 1 and string.sub(int, 1, 1) == '0') then return false end
  i = i + #int
  local frac = string.match(t, '^%.%d+', i)
  if frac then i = i + #frac end
  local exp = string.match(t, '^[eE][%+%-]?%d+', i)
  if exp then i = i + #exp end
  return i == #t + 1
end
-- envelope_header(s): the header table when s follows the grammar of Go's
-- parseEnvelopeHeader exactly (cjson alone also takes 0x1F, +3, 03, inf,
-- nan, raw control bytes, and refuses escaped surrogates Go would take).
local function envelope_header(s)
  if string.find(s, '[%z\1-\31]') then return nil end
  local outside, i = {}, 1
  while true do
    local q = string.find(s, '"', i, true)
    table.insert(outside, string.sub(s, i, (q or #s + 1) - 1))
    if not q then break end
    local j = q + 1
    while true do
      local c = string.find(s, '["\\]', j)
      if not c then return nil end
      if string.sub(s, c, c) == '"' then j = c + 1; break end
      local x = string.sub(s, c + 1, c + 1)
      if x == 'u' then
        local hex = string.sub(s, c + 2, c + 5)
        if not string.match(hex, '^%x%x%x%x$') then return nil end
        local v = tonumber(hex, 16)
        if v >= 55296 and v <= 57343 then return nil end
        j = c + 6
      elseif string.find('"\\/bfnrt', x, 1, true) and x ~= '' then
        j = c + 2
      else
        return nil
      end
    end
    i = j
  end
  for _, seg in ipairs(outside) do
    for tok in string.gmatch(seg, '[^%s{}%[%],:]+') do
      if tok ~= 'true' and tok ~= 'false' and tok ~= 'null' and not json_number(tok) then return nil end
    end
  end
  if not string.match(s, '^[ \t\r]*{') then return nil end
  local ok, h = pcall(cjson.decode, s)
  if not ok or type(h) ~= 'table' then return nil end
  for k, v in pairs(h) do
    if k == 'attempts' then
      if type(v) ~= 'number' or v ~= math.floor(v) or v < 0 or v > 2147483647 then return nil end
    elseif k == 'id' then
      if type(v) ~= 'string' then return nil end
    elseif k == 'assigned' then
      if type(v) ~= 'boolean' then return nil end
    else
      return nil
    end
  end
  if h.attempts == nil then return nil end
  return h
end
local function split_entry(e)
  if string.sub(e, 1, 5) == 'rkq1 ' then
    local nl = string.find(e, '\n', 6, true)
    if nl and nl <= 5 + 4096 then
      local h = envelope_header(string.sub(e, 6, nl - 1))
      if h then return h, string.sub(e, nl + 1) end
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

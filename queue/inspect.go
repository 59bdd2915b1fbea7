package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// scheduledScanScript reads up to ARGV[3] members of the scheduled set from
// score ARGV[1] on, skipping the first ARGV[2] of them, one member at a time
// (see listPageScript: Redis holds at most one member's copies), each cut to
// its first ARGV[4] bytes after "<nonce> ". Pages follow scores, not
// indexes: the mover removing due members ahead of the page moves no member
// a page has not read yet past it (a member it removes with the page's own
// score is due, so pending has it: Inspect reads pending after).
//
// KEYS[1] scheduled zset
// ARGV[1] min score
// ARGV[2] members of that score and after to skip (already read)
// ARGV[3] count
// ARGV[4] bytes of each entry to return
// ARGV[5] reply budget, bytes
// Output: {score, size, sha1 of the entry, entry prefix} per member
// read; fewer than ARGV[3] members when the set or the budget ended.
var scheduledScanScript = redis.NewScript(luaDrop + `
local out, bytes = {}, 0
local skip, n = tonumber(ARGV[2]), tonumber(ARGV[4])
for i = 0, tonumber(ARGV[3]) - 1 do
  if bytes >= tonumber(ARGV[5]) then break end
  local r = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', skip + i, 1, 'WITHSCORES')
  if #r == 0 then break end
  local m = r[1]
  local size = #m
  local sp = string.find(m, ' ', 1, true) or 0
  local e = string.sub(m, sp + 1)
  local p = string.sub(e, 1, n)
  local sum = redis.sha1hex(e)
  m, e = nil, nil
  drop(size * 2)
  bytes = bytes + #p + 64
  out[#out + 1] = {r[2], size - sp, sum, p}
end
return out
`)

// findScheduled scans the scheduled set, the earliest due first, for
// entries matching sel (see scheduledScanScript), with their due time.
func (q *Queue) findScheduled(ctx context.Context, sel Selector) ([]Entry, error) {
	var out []Entry
	minScore, skip := "-inf", 0
	for {
		res, err := scheduledScanScript.Run(ctx, q.rdb, []string{q.scheduled}, minScore, skip, scanPage, scanPrefix, scanPageBytes).Slice()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", q.scheduled, err)
		}
		for _, r := range res {
			m, _ := r.([]any)
			if len(m) != 4 {
				return nil, fmt.Errorf("read %s: page script returned %v", q.scheduled, r)
			}
			score := replyString(m[0])
			if score == minScore {
				skip++
			} else {
				minScore, skip = score, 1
			}
			e := pendingEntry(rawEntry{size: int(replyInt(m[1])), sha1: replyString(m[2]), prefix: replyString(m[3])})
			if !e.matches(sel) {
				continue
			}
			e.Location = LocScheduled
			if f, err := strconv.ParseFloat(score, 64); err == nil {
				e.DueAt = time.UnixMilli(int64(f))
			}
			out = append(out, e)
		}
		if len(res) == 0 { // a short page only means its bytes ran out
			return out, nil
		}
	}
}

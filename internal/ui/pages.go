package ui

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
)

// listPrefix is how many bytes of each payload a list page reads and shows.
const listPrefix = 4096

// states are the lists the dashboard shows, in the order events move.
var states = []struct {
	Loc   queue.Location
	Title string
}{
	{queue.LocScheduled, "Scheduled"},
	{queue.LocPending, "Pending"},
	{queue.LocProcessing, "In flight"},
	{queue.LocDead, "Dead"},
	{queue.LocDone, "Done"},
}

func stateTitle(loc queue.Location) string {
	for _, s := range states {
		if s.Loc == loc {
			return s.Title
		}
	}
	return ""
}

// base is what the layout needs.
type base struct {
	Title, Queue, CSRF, Nav string
	ReadOnly                bool
	RefreshMS               int64
	Query                   string
}

func (s *Server) base(title, nav string) base {
	return base{Title: title, Queue: s.q.Config().Name, CSRF: s.csrf, Nav: nav, ReadOnly: s.cfg.ReadOnly,
		RefreshMS: s.cfg.Refresh.Milliseconds()}
}

// render writes a page.
func (s *Server) render(w http.ResponseWriter, b base, status int, content func(*page)) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, layout(b, content))
}

// fail answers a Redis error: logged, and shown without
// anything of the request (no credential can be in it: the Redis
// configuration's String hides passwords).
func (s *Server) fail(w http.ResponseWriter, err error) {
	s.log.Error("ui: request failed", zap.Error(err))
	http.Error(w, "500 internal error: "+err.Error(), http.StatusInternalServerError)
}

// stateRow is one line of the overview's table.
type stateRow struct {
	Loc    queue.Location
	Title  string
	Count  int64
	Oldest string // age of the oldest, "-" when none or unknown
}

type kv struct{ Key, Value string }

type overviewData struct {
	base
	Now      time.Time
	States   []stateRow
	Counters []kv
	Server   queue.ServerInfo
	Runs     []kv
	Chart    chart
	Expired  int64
	Claiming int64
}

// overviewView reads everything the overview shows: one snapshot script,
// one INFO (default user only), one HGETALL of the runs, one ZRANGEBYSCORE
// of the history.
func (s *Server) overviewView(r *http.Request) (overviewData, error) {
	ctx := r.Context()
	d := overviewData{base: s.base("Overview", "overview")}
	snap, err := s.q.Snapshot(ctx, queue.SnapshotOptions{OldestDead: true})
	if err != nil {
		return d, err
	}
	d.Now, d.Expired, d.Claiming = snap.Now, snap.LeasesExpired, snap.Claiming
	ageOf := func(t time.Time) string {
		if a, ok := snap.Age(t); ok {
			return a.Round(time.Second).String()
		}
		return "-"
	}
	done, err := s.q.DoneCount(ctx)
	if err != nil {
		return d, err
	}
	overdue := "none due"
	if snap.Overdue > 0 {
		overdue = fmt.Sprintf("%d overdue, the oldest by %s", snap.Overdue, ageOf(snap.OldestOverdue))
	}
	d.States = []stateRow{
		{queue.LocScheduled, "Scheduled", snap.Scheduled, overdue},
		{queue.LocPending, "Pending", snap.Pending, ageOf(snap.OldestPending)},
		{queue.LocProcessing, "In flight", snap.Processing, ageOf(snap.OldestProcessing)},
		{queue.LocDead, "Dead", snap.Dead, ageOf(snap.OldestDead)},
		{queue.LocDone, "Done (records)", done, "-"},
	}
	for _, n := range queue.CounterNames() {
		d.Counters = append(d.Counters, kv{n, strconv.FormatInt(snap.Counters[n], 10)})
	}
	d.Server = s.q.Server(ctx, s.redis)
	runs, err := s.q.Runs(ctx)
	if err != nil {
		return d, err
	}
	for _, name := range []string{"reaper", "mover"} {
		v := "never recorded"
		if t, ok := runs[name]; ok {
			v = t.UTC().Format("15:04:05Z") + " (" + ageOf(t) + " ago)"
		}
		d.Runs = append(d.Runs, kv{name, v})
	}
	hist, err := s.q.History(ctx, snap.Now, 60)
	if err != nil {
		return d, err
	}
	d.Chart = makeChart(hist)
	return d, nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewView(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, d.base, http.StatusOK, overviewPage(d))
}

// overviewFragment is the overview's body alone, for the refresh script.
func (s *Server) overviewFragment(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewView(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var p page
	overviewBody(&p, d)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, p.String())
}

// entryView is one entry of a list, ready to show.
type entryView struct {
	Position       int64
	ID, Ref, Token string
	Attempts       int
	Published      string
	Reason         string
	DeadAt         string
	ClaimedAt      string
	Deadline       string
	Due            string
	Pod            string
	Acked          string
	Acks           int
	Done           bool // a done record: no payload
	Payload        Payload
}

func view(e queue.Entry, now time.Time, limit int) entryView {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z") + " (" + max(now.Sub(t), 0).Round(time.Second).String() + " ago)"
	}
	v := entryView{
		Position: e.Position, ID: e.ID, Ref: e.Ref, Token: e.Token, Attempts: e.Attempts,
		Published: ago(e.PublishedAt), Reason: e.Reason, DeadAt: ago(e.DeadAt), ClaimedAt: ago(e.ClaimedAt),
		Payload: renderPayload(e.Payload, e.Size, e.Truncated, limit),
	}
	if !e.LeaseDeadline.IsZero() {
		v.Deadline = e.LeaseDeadline.UTC().Format("15:04:05.000Z")
	}
	if !e.DueAt.IsZero() {
		v.Due = e.DueAt.UTC().Format("2006-01-02 15:04:05Z")
		if d := e.DueAt.Sub(now); d > 0 {
			v.Due += " (in " + d.Round(time.Second).String() + ")"
		} else {
			v.Due += " (overdue by " + (-d).Round(time.Second).String() + ")"
		}
	}
	v.Pod, v.Acks, v.Done = e.Pod, e.Acks, e.Location == queue.LocDone
	v.Acked = ago(e.AckedAt)
	return v
}

type listData struct {
	base
	Loc         queue.Location
	StateTitle  string
	Entries     []entryView
	Total       int64
	Page, Pages int
	First, Last int
	Prev, Next  int
	CanRedrive  bool
	CanPurge    bool
	CanCancel   bool
	CanMakeDue  bool
	PageSize    int
}

func parseState(v string) (queue.Location, bool) {
	for _, s := range states {
		if string(s.Loc) == v {
			return s.Loc, true
		}
	}
	return "", false
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	loc, ok := parseState(r.PathValue("state"))
	if !ok {
		http.Error(w, "404 not found: the states are scheduled, pending, processing, dead and done", http.StatusNotFound)
		return
	}
	page := 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			http.Error(w, "400 bad request: page must be a number from 1", http.StatusBadRequest)
			return
		}
		page = n
	}
	ps := s.cfg.PageSize
	res, err := s.q.Page(r.Context(), loc, (page-1)*ps, ps, listPrefix)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := time.Now()
	d := listData{base: s.base(stateTitle(loc), string(loc)), Loc: loc, StateTitle: stateTitle(loc), Total: res.Total,
		Page: page, Pages: int((res.Total + int64(ps) - 1) / int64(ps)), PageSize: ps}
	for _, e := range res.Entries {
		d.Entries = append(d.Entries, view(e, now, listPrefix))
	}
	if len(d.Entries) > 0 {
		d.First, d.Last = int(d.Entries[0].Position), int(d.Entries[len(d.Entries)-1].Position)
	}
	if page > 1 {
		d.Prev = page - 1
	}
	if page < d.Pages {
		d.Next = page + 1
	}
	if !s.cfg.ReadOnly {
		d.CanRedrive = loc == queue.LocDead && res.Total > 0
		d.CanPurge = (loc == queue.LocPending || loc == queue.LocDead || loc == queue.LocScheduled) && res.Total > 0
		d.CanCancel = loc == queue.LocProcessing
		d.CanMakeDue = loc == queue.LocScheduled && res.Total > 0
	}
	s.render(w, d.base, http.StatusOK, listPage(d))
}

// found is what a search found in one state.
type found struct {
	ByID    bool // looked up by id (done records: one HGET)
	Title   string
	Loc     queue.Location
	Scanned int
	Total   int64
	Capped  bool
	Entries []entryView
	Limit   int
}

type findData struct {
	base
	Searched bool
	Results  []found
	Matches  int
	Limit    int
}

// maxMatches bounds the entries a search shows per state.
const maxMatches = 100

// find looks for an id, an @reference or a substring of the payload in the
// first UI_SEARCH_LIMIT entries of each state (and says how many it looked
// at).
func (s *Server) find(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("q")
	d := findData{base: s.base("Find", "find"), Limit: s.cfg.SearchLimit}
	d.Query = text
	if text != "" {
		if len(text) > 1024 {
			http.Error(w, "400 bad request: the search text is limited to 1024 bytes", http.StatusBadRequest)
			return
		}
		d.Searched = true
		now := time.Now()
		for _, st := range states {
			if st.Loc == queue.LocDone {
				f := found{Title: st.Title, Loc: st.Loc, Limit: s.cfg.SearchLimit, ByID: true}
				rec, ok, err := s.q.Done(r.Context(), text)
				if err != nil {
					s.fail(w, err)
					return
				}
				if ok {
					e := doneView(rec)
					f.Entries = append(f.Entries, view(e, now, listPrefix))
				}
				d.Matches += len(f.Entries)
				d.Results = append(d.Results, f)
				continue
			}
			res, err := s.q.Search(r.Context(), st.Loc, text, s.cfg.SearchLimit, maxMatches)
			if err != nil {
				s.fail(w, err)
				return
			}
			f := found{Title: st.Title, Loc: st.Loc, Scanned: res.Scanned, Total: res.Total, Capped: res.Capped, Limit: s.cfg.SearchLimit}
			for _, e := range res.Matches {
				f.Entries = append(f.Entries, view(e, now, listPrefix))
			}
			d.Matches += len(f.Entries)
			d.Results = append(d.Results, f)
		}
	}
	s.render(w, d.base, http.StatusOK, findPage(d))
}

// hidden is a form field carried from a confirmation to its action.
type hidden struct{ Name, Value string }

type confirmData struct {
	base
	Action   string // form action path
	Question string
	Items    []string
	Fields   []hidden
	Back     string
}

type resultData struct {
	base
	Heading string
	Lines   []string
	Back    string
	Failed  bool
}

func (s *Server) confirm(w http.ResponseWriter, action, question string, items []string, fields []hidden, back string) {
	d := confirmData{base: s.base("Confirm", ""), Action: action, Question: question, Items: items, Fields: fields, Back: back}
	s.render(w, d.base, http.StatusOK, confirmPage(d))
}

func (s *Server) result(w http.ResponseWriter, status int, heading string, lines []string, back string) {
	d := resultData{base: s.base(heading, ""), Heading: heading, Lines: lines, Back: back, Failed: status >= 400}
	s.render(w, d.base, status, resultPage(d))
}

// selectorsOf reads the "ref" fields (@references or ids) of a form.
func selectorsOf(r *http.Request) ([]queue.Selector, error) {
	var out []queue.Selector
	for _, v := range r.PostForm["ref"] {
		sel, err := queue.ParseSelector(v)
		if err != nil {
			return nil, err
		}
		out = append(out, sel)
	}
	return out, nil
}

func names(es []queue.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		n := e.Ref
		if e.ID != "" {
			n = queue.Printable(e.ID) + " (" + e.Ref + ")"
		}
		out = append(out, n)
	}
	return out
}

// selection reads an action's target: all=1, or the selected "ref" fields.
// With neither (or a bad ref) it answers 400 with what to do and ok false.
func (s *Server) selection(w http.ResponseWriter, r *http.Request, none, title, back string) (all bool, sels []queue.Selector, ok bool) {
	all = r.PostForm.Get("all") == "1"
	sels, err := selectorsOf(r)
	if err != nil || (!all && len(sels) == 0) {
		msg := none
		if err != nil {
			msg = err.Error()
		}
		s.result(w, http.StatusBadRequest, title, []string{msg}, back)
		return false, nil, false
	}
	return all, sels, true
}

// redrive moves dead letters back to pending: the selected ones ("ref"
// fields) or all ("all=1"), after a confirmation.
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	all, sels, ok := s.selection(w, r, "select dead letters to redrive", "Nothing redriven", "/state/dead")
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != "1" {
		if all {
			snap, err := s.q.Snapshot(ctx, queue.SnapshotOptions{})
			if err != nil {
				s.fail(w, err)
				return
			}
			s.confirm(w, "/redrive", fmt.Sprintf("Redrive all %d dead letters back to pending?", snap.Dead), nil,
				[]hidden{{"all", "1"}}, "/state/dead")
			return
		}
		res, err := s.q.Redrive(ctx, sels, true)
		if err != nil {
			s.result(w, http.StatusConflict, "Nothing redriven", []string{err.Error()}, "/state/dead")
			return
		}
		fields := make([]hidden, 0, len(sels))
		for _, v := range r.PostForm["ref"] {
			fields = append(fields, hidden{"ref", v})
		}
		s.confirm(w, "/redrive", fmt.Sprintf("Redrive these %d dead letters back to pending?", len(res.Moved)), names(res.Moved), fields, "/state/dead")
		return
	}
	var res queue.RedriveResult
	var err error
	if all {
		res, err = s.q.RedriveAll(ctx, false)
	} else {
		res, err = s.q.Redrive(ctx, sels, false)
	}
	lines := []string{fmt.Sprintf("%d dead letters moved back to pending (byte for byte):", len(res.Moved))}
	lines = append(lines, names(res.Moved)...)
	for _, sk := range res.Skipped {
		lines = append(lines, "left in dead: "+names([]queue.Entry{sk.Entry})[0]+": "+sk.Reason)
	}
	if len(res.Gone) > 0 {
		lines = append(lines, fmt.Sprintf("%d were gone already (another redrive or a purge): %s", len(res.Gone), strings.Join(names(res.Gone), ", ")))
	}
	s.log.Info("ui: redrive", zap.Int("moved", len(res.Moved)), zap.Int("skipped", len(res.Skipped)), zap.Int("gone", len(res.Gone)), zap.Error(err))
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrRedriveRefused) {
			status = http.StatusConflict
		}
		s.result(w, status, "Redrive failed", append(lines, err.Error()), "/state/dead")
		return
	}
	s.result(w, http.StatusOK, "Redriven", lines, "/state/dead")
}

// purge deletes every entry of pending or dead, after a confirmation that
// says how many.
func (s *Server) purge(w http.ResponseWriter, r *http.Request) {
	loc, ok := parseState(r.PostForm.Get("state"))
	if !ok || (loc != queue.LocPending && loc != queue.LocDead && loc != queue.LocScheduled) {
		s.result(w, http.StatusBadRequest, "Nothing purged", []string{"only scheduled, pending and dead can be purged"}, "/")
		return
	}
	back := "/state/" + string(loc)
	if r.PostForm.Get("confirm") != "1" {
		snap, err := s.q.Snapshot(r.Context(), queue.SnapshotOptions{})
		if err != nil {
			s.fail(w, err)
			return
		}
		n := snap.Pending
		switch loc {
		case queue.LocDead:
			n = snap.Dead
		case queue.LocScheduled:
			n = snap.Scheduled
		}
		s.confirm(w, "/purge", fmt.Sprintf("Delete all %d entries of %s? They cannot be brought back.", n, loc), nil,
			[]hidden{{"state", string(loc)}}, back)
		return
	}
	n, err := s.q.Purge(r.Context(), loc)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("ui: purge", zap.String("state", string(loc)), zap.Int64("deleted", n))
	s.result(w, http.StatusOK, "Purged", []string{fmt.Sprintf("%d entries deleted from %s.", n, loc)}, back)
}

// cancel asks the job of an in-flight event to stop (queue.Cancel).
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	sels, err := selectorsOf(r)
	if err != nil || len(sels) != 1 {
		msg := "name one event in flight"
		if err != nil {
			msg = err.Error()
		}
		s.result(w, http.StatusBadRequest, "Nothing cancelled", []string{msg}, "/state/processing")
		return
	}
	ref := r.PostForm.Get("ref")
	if r.PostForm.Get("confirm") != "1" {
		s.confirm(w, "/cancel", "Cancel this event in flight? Its job stops it (the runner sends SIGTERM to its program) and dead-letters it with reason \"cancelled by operator\"; redrive brings it back.",
			[]string{ref}, []hidden{{"ref", ref}}, "/state/processing")
		return
	}
	es, err := s.q.Cancel(r.Context(), sels[0])
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, queue.ErrNotFound) {
			status = http.StatusConflict
		}
		s.result(w, status, "Nothing cancelled", []string{err.Error()}, "/state/processing")
		return
	}
	s.log.Info("ui: cancel", zap.Strings("events", names(es)))
	lines := []string{fmt.Sprintf("Cancel requested for %s; its job stops it and dead-letters it at its next heartbeat (within %s).",
		strings.Join(names(es), ", "), (s.q.Config().LeaseDuration / 3).Round(time.Second))}
	s.result(w, http.StatusOK, "Cancel requested", lines, "/state/processing")
}

// doneView is a done record as an entry.
func doneView(r queue.DoneRecord) queue.Entry {
	return queue.Entry{Location: queue.LocDone, ID: r.ID, Attempts: r.Attempt, ClaimedAt: r.LeasedAt, AckedAt: r.AckedAt, Acks: r.Acks, Pod: r.Pod}
}

// due makes scheduled events due now (queue.RedriveScheduled, or
// RedriveScheduledAll with all=1): the mover moves them to the back of
// pending at its next run, their attempts unchanged.
func (s *Server) due(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	all, sels, ok := s.selection(w, r, "name scheduled events", "Nothing made due", "/state/scheduled")
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != "1" {
		if all {
			snap, err := s.q.Snapshot(ctx, queue.SnapshotOptions{})
			if err != nil {
				s.fail(w, err)
				return
			}
			s.confirm(w, "/due", fmt.Sprintf("Make all %d scheduled events due now? The mover moves them to pending at its next run (attempts unchanged).", snap.Scheduled), nil,
				[]hidden{{"all", "1"}}, "/state/scheduled")
			return
		}
		fields := make([]hidden, 0, len(sels))
		for _, v := range r.PostForm["ref"] {
			fields = append(fields, hidden{"ref", v})
		}
		s.confirm(w, "/due", "Make these scheduled events due now? The mover moves them to pending at its next run (attempts unchanged).", r.PostForm["ref"], fields, "/state/scheduled")
		return
	}
	var lines []string
	if all {
		n, err := s.q.RedriveScheduledAll(ctx)
		s.log.Info("ui: make due", zap.Int("events", n), zap.Error(err))
		if err != nil {
			s.result(w, http.StatusInternalServerError, "Make due failed", []string{fmt.Sprintf("%d made due before: %v", n, err)}, "/state/scheduled")
			return
		}
		lines = []string{fmt.Sprintf("%d scheduled events made due now; the mover moves them to pending at its next run.", n)}
	} else {
		es, err := s.q.RedriveScheduled(ctx, sels)
		s.log.Info("ui: make due", zap.Strings("events", names(es)), zap.Error(err))
		if err != nil {
			s.result(w, http.StatusInternalServerError, "Make due failed", []string{err.Error()}, "/state/scheduled")
			return
		}
		lines = append([]string{fmt.Sprintf("%d scheduled events made due now; the mover moves them to pending at its next run:", len(es))}, names(es)...)
	}
	s.result(w, http.StatusOK, "Made due", lines, "/state/scheduled")
}

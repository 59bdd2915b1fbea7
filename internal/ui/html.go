package ui

// The pages are written by the functions below, not by html/template:
// text/template calls reflect's MethodByName, which makes the linker keep
// every exported method of every type in the binary — measured: +7.9 MiB
// (12.1 → 19.7 MiB), above the image's 15 MB. Here every value that comes
// from Redis or the request goes through esc (html.EscapeString: & < > " '
// become entities) and is placed only in element text or a double-quoted
// attribute value; no value is ever placed in a URL scheme position, a
// script, a style or an event-handler attribute. Numbers are formatted by
// %d. A payload is therefore text, whatever its bytes.

import (
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/redis-keda/redis-keda/queue"
)

// esc escapes s for element text and double-quoted attribute values.
func esc(s string) string { return html.EscapeString(s) }

// page is an HTML document under construction.
type page struct{ strings.Builder }

// raw writes trusted markup (literals of this file only).
func (p *page) raw(s string) { p.WriteString(s) }

// f writes format (trusted markup) with args: strings escaped, numbers as
// they are. Any other type is refused at run time (a programming error).
func (p *page) f(format string, args ...any) {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = esc(v)
		case int, int64, int32, bool:
		default:
			panic(fmt.Sprintf("ui: page.f argument %d of type %T", i, a))
		}
	}
	fmt.Fprintf(p, format, args...)
}

func layout(b base, content func(*page)) string {
	var p page
	p.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	p.f("<title>%s · %s · redis-keda</title>\n", b.Title, b.Queue)
	p.raw("<link rel=\"stylesheet\" href=\"/static/style.css\">\n<script src=\"/static/app.js\" defer></script>\n</head>\n")
	p.f("<body data-refresh=\"%d\">\n<header>\n<span class=\"brand\">redis-keda</span>\n<span class=\"queue\" title=\"queue (QUEUE)\">%s</span>\n<nav>\n", b.RefreshMS, b.Queue)
	for _, n := range []struct{ nav, href, title string }{
		{"overview", "/", "Overview"}, {"scheduled", "/state/scheduled", "Scheduled"}, {"pending", "/state/pending", "Pending"},
		{"processing", "/state/processing", "In flight"}, {"dead", "/state/dead", "Dead"}, {"done", "/state/done", "Done"},
	} {
		here := ""
		if n.nav == b.Nav {
			here = ` class="here"`
		}
		p.raw(`<a href="` + n.href + `"` + here + `>` + n.title + "</a>\n")
	}
	p.raw("</nav>\n")
	p.f(`<form class="find" method="get" action="/find"><input type="search" name="q" value="%s" placeholder="id, @ref or text in payload" aria-label="find"><button type="submit">Find</button></form>`+"\n", b.Query)
	if b.ReadOnly {
		p.raw(`<span class="badge" id="read-only">read-only</span>` + "\n")
	}
	p.raw("</header>\n<main>\n")
	content(&p)
	p.raw("</main>\n</body>\n</html>\n")
	return p.String()
}

// csrfField is the hidden CSRF field of every form.
func csrfField(p *page, csrf string) { p.f(`<input type="hidden" name="csrf" value="%s">`, csrf) }

func overviewPage(d overviewData) func(*page) {
	return func(p *page) {
		p.raw("<h1>Overview</h1>\n<div id=\"overview\" data-fragment=\"/fragment/overview\">\n")
		overviewBody(p, d)
		p.f("</div>\n<p class=\"refresh\"><label><input type=\"checkbox\" id=\"auto-refresh\" checked> refresh every %s</label> <span id=\"refreshed\"></span></p>\n",
			strconv.FormatInt(d.RefreshMS/1000, 10)+" s")
	}
}

func overviewBody(p *page, d overviewData) {
	p.raw("<section class=\"states\">\n<table id=\"states\">\n<thead><tr><th>state</th><th>events</th><th>oldest</th></tr></thead>\n<tbody>\n")
	for _, s := range d.States {
		p.f(`<tr data-state="%s"><td><a href="/state/%s">%s</a></td><td class="count" id="count-%s">%d</td><td class="age">%s</td></tr>`+"\n",
			string(s.Loc), string(s.Loc), s.Title, string(s.Loc), s.Count, s.Oldest)
	}
	p.f(`<tr><td>Claimed, not leased yet</td><td class="count" id="count-claiming">%d</td><td></td></tr>`+"\n", d.Claiming)
	p.f(`<tr><td>Leases expired (the reaper's next work)</td><td class="count" id="count-expired">%d</td><td></td></tr>`+"\n", d.Expired)
	p.raw("</tbody>\n</table>\n<table id=\"server\">\n<tbody>\n")
	srv := string(d.Server.Mode)
	if d.Server.Version != "" {
		srv += " · " + d.Server.Version
	}
	if d.Server.Role != "" {
		srv += " · " + d.Server.Role
	}
	p.f("<tr><th>Redis</th><td id=\"redis\">%s</td></tr>\n", srv)
	for _, r := range d.Runs {
		p.f("<tr><th>%s last run</th><td id=\"run-%s\">%s</td></tr>\n", r.Key, r.Key, r.Value)
	}
	p.f("<tr><th>Redis time</th><td>%s</td></tr>\n</tbody>\n</table>\n</section>\n", d.Now.UTC().Format("2006-01-02 15:04:05Z"))
	c := d.Chart
	p.f("<section>\n<h2>Per minute, last hour <span class=\"legend\"><i class=\"acked\"></i>acked %d <i class=\"retried\"></i>retried %d <i class=\"dead\"></i>dead %d</span></h2>\n",
		c.Total[0], c.Total[1], c.Total[2])
	p.f(`<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="acked, retried and dead per minute">`+"\n",
		c.W, c.H+16, c.W, c.H+16)
	for _, b := range c.Bars {
		if b.Unknown {
			p.f(`<rect class="unknown" x="%d" y="%d" width="%d" height="3"><title>%s</title></rect>`+"\n", b.X, c.H, b.W, b.Title)
			continue
		}
		p.f(`<rect class="acked" x="%d" y="%d" width="%d" height="%d"></rect>`, b.X, b.Acked.Y, b.W, b.Acked.H)
		p.f(`<rect class="retried" x="%d" y="%d" width="%d" height="%d"></rect>`, b.X, b.Retried.Y, b.W, b.Retried.H)
		p.f(`<rect class="dead" x="%d" y="%d" width="%d" height="%d"></rect>`, b.X, b.Dead.Y, b.W, b.Dead.H)
		p.f(`<rect class="hit" x="%d" y="0" width="%d" height="%d"><title>%s</title></rect>`+"\n", b.X, b.W, c.H, b.Title)
	}
	p.f(`<text x="0" y="%d">%s</text><text x="%d" y="%d" text-anchor="end">%s</text><text x="%d" y="10" text-anchor="end">max %d/min</text>`+"\n</svg>\n",
		c.H+14, c.First, c.W, c.H+14, c.Last, c.W, c.Max)
	p.f("<p class=\"note\">%d of %d minutes sampled. The history lives in Redis (the queue's history key: one sample a minute, written by the publisher or a running dashboard, 24 h kept), so it survives restarts.</p>\n</section>\n",
		c.Known, c.Minutes)
	p.raw("<section>\n<h2>Counters since the queue was created</h2>\n<table id=\"counters\"><tbody>\n")
	for _, kv := range d.Counters {
		p.f("<tr><th>%s</th><td class=\"count\" id=\"counter-%s\">%s</td></tr>\n", kv.Key, kv.Key, kv.Value)
	}
	p.raw("</tbody></table>\n</section>\n")
}

func payloadHTML(p *page, pl Payload) {
	meta := pl.Kind + " · " + sizeText(pl.Size)
	if pl.Cut {
		meta += " · showing the first " + sizeText(pl.Shown)
	}
	p.f("<div class=\"payload\"><div class=\"meta\">%s</div><pre class=\"%s\">%s</pre></div>", meta, pl.Kind, pl.Text)
}

func entriesHTML(p *page, d entriesData) {
	p.raw("<table class=\"entries\">\n<thead><tr>")
	if d.Select {
		p.raw(`<th class="narrow"><input type="checkbox" id="select-all" aria-label="select all"></th>`)
	}
	p.raw("<th class=\"narrow\">#</th><th class=\"info\">event</th><th>payload</th></tr></thead>\n<tbody>\n")
	for _, e := range d.Entries {
		p.raw(`<tr class="entry">`)
		if d.Select {
			p.f(`<td><input type="checkbox" name="ref" value="%s" class="select" form="selected" aria-label="select %s"></td>`, e.Ref, e.Ref)
		}
		p.f(`<td class="pos">%d</td><td class="info">`, e.Position)
		if e.ID != "" {
			p.f(`<div class="id" title="event id">%s</div>`, e.ID)
		} else {
			p.raw(`<div class="id"><i>no id</i></div>`)
		}
		p.f(`<div class="ref" title="reference">%s</div><div>attempts %d</div>`, e.Ref, e.Attempts)
		for _, l := range []struct{ label, v string }{
			{"due", e.Due}, {"published", e.Published}, {"leased", e.ClaimedAt}, {"lease until", e.Deadline},
			{"pod", e.Pod}, {"dead", e.DeadAt}, {"acked", e.Acked},
		} {
			if l.v != "" {
				p.f("<div>%s %s</div>", l.label, l.v)
			}
		}
		if e.Acks > 1 {
			p.f(`<div class="reason">acked %d times (processed more than once)</div>`, e.Acks)
		}
		if e.Reason != "" {
			p.f(`<div class="reason">%s</div>`, e.Reason)
		}
		if d.MakeDue {
			p.raw(`<form method="post" action="/due">`)
			csrfField(p, d.CSRF)
			p.f(`<input type="hidden" name="ref" value="%s"><button type="submit">Make due now…</button></form>`, e.Ref)
		}
		if d.Cancel {
			p.raw(`<form method="post" action="/cancel">`)
			csrfField(p, d.CSRF)
			p.f(`<input type="hidden" name="ref" value="%s"><button class="danger" type="submit">Cancel…</button></form>`, e.Ref)
		}
		if d.Redrive {
			p.raw(`<form method="post" action="/redrive">`)
			csrfField(p, d.CSRF)
			p.f(`<input type="hidden" name="ref" value="%s"><button type="submit">Redrive…</button></form>`, e.Ref)
		}
		p.raw("</td><td>")
		if e.Done {
			p.raw(`<div class="meta">a done record keeps no payload</div>`)
		} else {
			payloadHTML(p, e.Payload)
		}
		p.raw("</td></tr>\n")
	}
	p.raw("</tbody>\n</table>\n")
}

func listPage(d listData) func(*page) {
	return func(p *page) {
		p.f("<h1>%s <span class=\"total\" id=\"total\">%d</span></h1>\n<div class=\"bar\"><span class=\"range\">", d.StateTitle, d.Total)
		if len(d.Entries) > 0 {
			p.f("%d–%d of %d", d.First, d.Last, d.Total)
		} else {
			p.raw("nothing here")
		}
		switch d.Loc {
		case queue.LocPending:
			p.raw(" · the next to be claimed first")
		case queue.LocDead:
			p.raw(" · newest first")
		case queue.LocProcessing:
			p.raw(" · oldest delivery first")
		case queue.LocScheduled:
			p.raw(" · the earliest due first")
		case queue.LocDone:
			p.raw(" · the latest ack first (DONE_MAX_RECORDS, DONE_MAX_AGE bound them)")
		}
		p.raw("</span>")
		if d.Prev > 0 {
			p.f(` <a href="?page=%d" rel="prev">← page %d</a>`, d.Prev, d.Prev)
		}
		if d.Pages > 0 {
			p.f(" <span>page %d of %d</span>", d.Page, d.Pages)
		}
		if d.Next > 0 {
			p.f(` <a href="?page=%d" rel="next">page %d →</a>`, d.Next, d.Next)
		}
		p.raw("</div>\n")
		if d.CanRedrive || d.CanPurge || d.CanMakeDue {
			p.raw(`<div class="actions">`)
			if d.CanRedrive {
				p.raw(`<form method="post" action="/redrive" id="selected">`)
				csrfField(p, d.CSRF)
				p.raw(`<button type="submit" id="redrive-selected">Redrive selected…</button></form>`)
				p.raw(`<form method="post" action="/redrive">`)
				csrfField(p, d.CSRF)
				p.raw(`<input type="hidden" name="all" value="1"><button type="submit" id="redrive-all">Redrive all…</button></form>`)
			}
			if d.CanMakeDue {
				p.raw(`<form method="post" action="/due">`)
				csrfField(p, d.CSRF)
				p.raw(`<input type="hidden" name="all" value="1"><button type="submit" id="due-all">Make all due now…</button></form>`)
			}
			if d.CanPurge {
				p.raw(`<form method="post" action="/purge">`)
				csrfField(p, d.CSRF)
				p.f(`<input type="hidden" name="state" value="%s"><button class="danger" type="submit" id="purge">Purge %s…</button></form>`, string(d.Loc), string(d.Loc))
			}
			p.raw("</div>\n")
		}
		entriesHTML(p, entriesData{Entries: d.Entries, CSRF: d.CSRF, Select: d.CanRedrive, Redrive: d.CanRedrive, Cancel: d.CanCancel, MakeDue: d.CanMakeDue})
	}
}

func findPage(d findData) func(*page) {
	return func(p *page) {
		p.f("<h1>Find</h1>\n<p class=\"note\">By event id, by @reference (as peek shows it) or by text in the payload's first 64 KiB. Each state is searched in its first %d entries (UI_SEARCH_LIMIT), at most %d matches shown: a search costs Redis at most that, whatever the queue's size.</p>\n",
			d.Limit, maxMatches)
		if !d.Searched {
			return
		}
		p.f("<p id=\"matches\">%d matches for <q>%s</q>.</p>\n", d.Matches, d.Query)
		for _, f := range d.Results {
			p.f("<section class=\"found\" data-state=\"%s\">\n<h2>%s: %d found</h2>\n", string(f.Loc), f.Title, len(f.Entries))
			if f.ByID {
				p.raw("<p class=\"note scanned\">looked up by id (the done records are keyed by id).</p>\n")
				if len(f.Entries) > 0 {
					entriesHTML(p, entriesData{Entries: f.Entries})
				}
				p.raw("</section>\n")
				continue
			}
			p.f("<p class=\"note scanned\">searched the first %d of %d entries", f.Scanned, f.Total)
			if f.Capped {
				p.f("; stopped at %d matches", maxMatches)
			}
			if int64(f.Scanned) < f.Total {
				p.raw("; the rest was not searched")
			}
			p.raw(".</p>\n")
			if len(f.Entries) > 0 {
				rw := !d.ReadOnly
				entriesHTML(p, entriesData{Entries: f.Entries, CSRF: d.CSRF, Redrive: rw && f.Loc == queue.LocDead, Cancel: rw && f.Loc == queue.LocProcessing,
					MakeDue: rw && f.Loc == queue.LocScheduled})
			}
			p.raw("</section>\n")
		}
	}
}

func confirmPage(d confirmData) func(*page) {
	return func(p *page) {
		p.f("<h1>Confirm</h1>\n<p class=\"question\" id=\"question\">%s</p>\n", d.Question)
		if len(d.Items) > 0 {
			p.raw(`<ul class="items">`)
			for _, it := range d.Items {
				p.f("<li>%s</li>", it)
			}
			p.raw("</ul>\n")
		}
		p.f(`<form method="post" action="%s">`, d.Action)
		csrfField(p, d.CSRF)
		p.raw(`<input type="hidden" name="confirm" value="1">`)
		for _, h := range d.Fields {
			p.f(`<input type="hidden" name="%s" value="%s">`, h.Name, h.Value)
		}
		p.f(`<button type="submit" class="danger" id="confirm">Yes, do it</button> <a href="%s">No, go back</a></form>`+"\n", d.Back)
	}
}

func resultPage(d resultData) func(*page) {
	return func(p *page) {
		class := ""
		if d.Failed {
			class = ` class="failed"`
		}
		p.f("<h1 id=\"result-heading\""+class+">%s</h1>\n<ul id=\"result\">", d.Heading)
		for _, l := range d.Lines {
			p.f("<li>%s</li>", l)
		}
		p.f("</ul>\n<p><a href=\"%s\">Back</a></p>\n", d.Back)
	}
}

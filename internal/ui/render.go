package ui

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Payload is a payload made fit to show: everything in it is text that
// html.go escapes; nothing of the producer's bytes is ever markup.
type Payload struct {
	Kind string // "json", "text" or "binary"
	Text string // pretty JSON, text with controls quoted, or a hex dump
	// Size is the payload's size; Shown how many of its bytes Text shows.
	Size, Shown int
	Cut         bool
}

// binaryShown is how many bytes of a binary payload the hex dump shows.
const binaryShown = 1024

// renderPayload shows up to limit bytes of p (a payload of size bytes, cut
// by the queue when cut): valid whole JSON pretty-printed, UTF-8 text with
// control and format characters quoted (\x1b, \u202e; newlines and tabs
// kept), anything else as a hex dump.
func renderPayload(p []byte, size int, cut bool, limit int) Payload {
	if len(p) > limit {
		p, cut = p[:limit], true
	}
	if cut { // a character cut in the middle is not binary
		for i := 0; i < utf8.UTFMax-1 && len(p) > 0 && !utf8.Valid(p); i++ {
			p = p[:len(p)-1]
		}
	}
	out := Payload{Size: size, Shown: len(p), Cut: cut}
	switch {
	case !utf8.Valid(p):
		if len(p) > binaryShown {
			p, out.Cut = p[:binaryShown], true
		}
		out.Kind, out.Text, out.Shown = "binary", hex.Dump(p), len(p)
	case !cut && json.Valid(p) && len(bytes.TrimSpace(p)) > 0 && (bytes.TrimSpace(p)[0] == '{' || bytes.TrimSpace(p)[0] == '['):
		var b bytes.Buffer
		if err := json.Indent(&b, p, "", "  "); err == nil {
			out.Kind, out.Text = "json", quoteControls(b.String())
			break
		}
		fallthrough
	default:
		out.Kind, out.Text = "text", quoteControls(string(p))
	}
	return out
}

// quoteControls quotes every character that is not printable, except
// newline and tab: C0 and C1 controls, DEL, and format characters such as
// bidirectional overrides (which would reorder what the operator reads).
func quoteControls(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == utf8.RuneError || unicode.Is(unicode.Cf, r) || (r >= 0x80 && r < 0xa0) || !unicode.IsPrint(r) && r != ' ':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sizeText is a byte count for people.
func sizeText(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

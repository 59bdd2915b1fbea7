package ui

import (
	"strings"
	"testing"
)

func TestRenderPayload(t *testing.T) {
	cases := []struct {
		name      string
		payload   string
		size      int
		cut       bool
		limit     int
		wantKind  string
		wantText  string
		wantShown int
		wantCut   bool
	}{
		{"json pretty", `{"a":[1,2],"b":"<x>"}`, 21, false, 100, "json", "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"<x>\"\n}", 21, false},
		{"json cut is text", `{"a":"bcdef`, 40, true, 100, "text", `{"a":"bcdef`, 11, true},
		{"text with controls", "a\x1b[2Jb\u202ec\n\td\x00", 14, false, 100, "text", `a\x1b[2Jb\u202ec` + "\n\t" + `d\x00`, 14, false},
		{"invalid utf-8 is binary", "\xff\xfeok", 4, false, 100, "binary", "00000000  ff fe 6f 6b                                       |..ok|\n", 4, false},
		{"cut inside a character", "ab\xc3", 10, true, 100, "text", "ab", 2, true},
		{"limit cuts", "abcdef", 6, false, 4, "text", "abcd", 4, true},
		{"a number is text, not json", `42`, 2, false, 100, "text", "42", 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := renderPayload([]byte(tc.payload), tc.size, tc.cut, tc.limit)
			want := Payload{Kind: tc.wantKind, Text: tc.wantText, Size: tc.size, Shown: tc.wantShown, Cut: tc.wantCut}
			if got != want {
				t.Errorf("renderPayload(%q) = %+v, want %+v", tc.payload, got, want)
			}
		})
	}
}

// Every value in a page is escaped: a payload, an id and a reason that are
// markup come out as text.
func TestPageEscapes(t *testing.T) {
	var p page
	entriesHTML(&p, entriesData{CSRF: `c"sr<f`, Redrive: true, Entries: []entryView{{
		Position: 1, ID: `"><script>alert(1)</script>`, Ref: `@abc"def`, Reason: `<img src=x onerror=alert(2)>`,
		Payload: renderPayload([]byte(`<a href="javascript:alert(3)">x</a>`), 36, false, 100),
	}}})
	out := p.String()
	for _, bad := range []string{"<script>", "<img", "<a href", `value="@abc"def"`, `c"sr<f`} {
		if strings.Contains(out, bad) {
			t.Errorf("page holds %q unescaped:\n%s", bad, out)
		}
	}
	for _, want := range []string{`&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;`, `&lt;img src=x onerror=alert(2)&gt;`,
		`&lt;a href=&#34;javascript:alert(3)&#34;&gt;x&lt;/a&gt;`, `value="@abc&#34;def"`, `value="c&#34;sr&lt;f"`} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q:\n%s", want, out)
		}
	}
}

func TestPageRefusesOtherTypes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("page.f took a []byte: it must take only strings (escaped) and numbers")
		}
	}()
	var p page
	p.f("%s", []byte("<b>"))
}

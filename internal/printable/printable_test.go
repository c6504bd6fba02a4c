package printable

import "testing"

func TestEscapeAndQuote(t *testing.T) {
	for _, tc := range []struct{ in, escaped, quoted string }{
		{"8244;web-1", "8244;web-1", "8244;web-1"},
		{"café and spaces", "café and spaces", "café and spaces"},
		{"a\nb", `a\nb`, `"a\nb"`},
		{"\x1b[31mred", `\x1b[31mred`, `"\x1b[31mred"`},
		{"back\\slash", `back\\slash`, `back\slash`},
		{"\xff", `\xff`, `"\xff"`},
		{"line\u2028sep", `line\u2028sep`, `"line\u2028sep"`},
	} {
		if got := Escape(tc.in); got != tc.escaped {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.escaped)
		}
		if got := Quote(tc.in); got != tc.quoted {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.quoted)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"8244;web-1":         "8244;web-1",
		"8244;hôte ünïcode":  "8244;hôte ünïcode",
		"\x1b]0;pwned\a":     `\x1b]0;pwned\a`,
		"a\nb\tc\rd":         `a\nb\tc\rd`,
		`C:\dir`:             `C:\\dir`,
		"bad \xff byte":      `bad \xff byte`,
		"\u2028 \u200b \x7f": `\u2028 \u200b \x7f`,
		"\ufffd":             "\ufffd",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// A name is printed as it is, backslashes included, unless it holds
// something that is not printable text: then it is quoted whole.
func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lock/x.lock":     "/var/lock/x.lock",
		`C:\dir\x.lock`:        `C:\dir\x.lock`,
		"/tmp/hôte ü.lock":     "/tmp/hôte ü.lock",
		"/tmp/a\nb.lock":       `"/tmp/a\nb.lock"`,
		"/tmp/\x1b[31mred":     `"/tmp/\x1b[31mred"`,
		`C:\a` + "\tb":         `"C:\\a\tb"`,
		"/tmp/bad\xff.lock":    `"/tmp/bad\xff.lock"`,
		"/tmp/\u2028.lock":     `"/tmp/\u2028.lock"`,
		"/tmp/nbsp\u00a0.lock": `"/tmp/nbsp\u00a0.lock"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

package lockfile

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// Any content a lock file can hold, from byte 1 on, names at most one line
// of it: what comes after the first newline (the tail a killed holder or
// an unfinished write leaves) never reaches the name.
func FuzzHolderFrom(f *testing.F) {
	for _, seed := range []string{"", "\n", "8244;web-1\n", "8244;web-1\nold-tail\n", " \t\r\n", "\x00\xff\n"} {
		f.Add([]byte(seed), []byte("tail"))
	}
	f.Fuzz(func(t *testing.T, content, tail []byte) {
		holder := holderFrom(content)
		if strings.Contains(holder, "\n") {
			t.Fatalf("holderFrom(%q) = %q spans lines", content, holder)
		}
		if holder != strings.TrimSpace(holder) {
			t.Fatalf("holderFrom(%q) = %q keeps surrounding white space", content, holder)
		}
		if !strings.Contains(string(content), holder) {
			t.Fatalf("holderFrom(%q) = %q is not part of the content", content, holder)
		}
		if utf8.Valid(content) && !utf8.ValidString(holder) {
			t.Fatalf("holderFrom(%q) = %q broke a character", content, holder)
		}
		firstLine, _, hasNewline := bytes.Cut(content, []byte("\n"))
		if hasNewline {
			// Whatever follows the first line leaves the name alone.
			torn := append(append(append([]byte{}, firstLine...), '\n'), tail...)
			if got := holderFrom(torn); got != holder {
				t.Fatalf("holderFrom(%q) = %q, but with another tail %q", content, holder, got)
			}
		}
	})
}

// Package printable makes text safe to print to a terminal, so that content
// read from a lock file, or a path or a name in a message, cannot drive it.
package printable

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape writes backslashes and characters that are not printable as in a
// Go string literal (\\, \x1b, \n, \u2028, and \xff for a byte that is not
// UTF-8), and leaves the rest as it is.
func Escape(s string) string {
	clean := func(r rune) bool { return r != '\\' && r != utf8.RuneError && unicode.IsPrint(r) }
	if strings.IndexFunc(s, func(r rune) bool { return !clean(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case clean(r):
			b.WriteString(s[:size])
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		default:
			lit := strconv.QuoteRune(r)
			b.WriteString(lit[1 : len(lit)-1])
		}
		s = s[size:]
	}
	return b.String()
}

// Quote returns s as it is if it is printable text, or else s as a Go
// string literal, quotes included, so that its ends show too.
func Quote(s string) string {
	unprintable := func(r rune) bool { return !unicode.IsPrint(r) }
	if utf8.ValidString(s) && strings.IndexFunc(s, unprintable) < 0 {
		return s
	}
	return strconv.Quote(s)
}

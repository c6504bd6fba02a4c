package template

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Any template either is refused with an *Error or renders to the
// zc.lockfile format; text without braces comes out as it went in, and so
// does any text with its braces doubled. A template that parses is still
// refused with each malformed field put after it, and a {pid} put after it
// adds the pid to what it renders.
func FuzzTemplate(f *testing.F) {
	for _, seed := range []string{"{pid}", "{pid};{hostname}", "{{}}", "{", "}", "{pid:>8}", "a{{b}}c", "plain"} {
		f.Add(seed)
	}
	pid := strconv.Itoa(os.Getpid())
	f.Fuzz(func(t *testing.T, template string) {
		escaped := strings.NewReplacer("{", "{{", "}", "}}").Replace(template)
		if content := renderTemplate(t, escaped); string(content) != " "+template+"\n" {
			t.Fatalf("literal template %q renders as %q, want %q", escaped, content, " "+template+"\n")
		}
		parsed, err := Parse(template)
		if err != nil {
			var optErr *Error
			if !errors.As(err, &optErr) {
				t.Fatalf("Parse(%q) = %v, want an *Error", template, err)
			}
			return
		}
		content, err := parsed.Render(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(content) < 2 || content[0] != ' ' || content[len(content)-1] != '\n' {
			t.Fatalf("template %q renders as %q", template, content)
		}
		if !strings.ContainsAny(template, "{}") && string(content) != " "+template+"\n" {
			t.Fatalf("template %q without fields renders as %q", template, content)
		}
		for _, malformed := range []string{"{", "}", "{}", "{pid:>8}", "{pid!r}", "{user}", "{pid"} {
			var optErr *Error
			if _, err := Parse(template + malformed); !errors.As(err, &optErr) {
				t.Fatalf("Parse(%q) = %v, want an *Error", template+malformed, err)
			}
		}
		if got, want := string(renderTemplate(t, template+"{pid}")), string(content[:len(content)-1])+pid+"\n"; got != want {
			t.Fatalf("template %q renders as %q, want %q", template+"{pid}", got, want)
		}
	})
}

func renderTemplate(t *testing.T, template string) []byte {
	t.Helper()
	parsed, err := Parse(template)
	if err != nil {
		t.Fatalf("Parse(%q): %v", template, err)
	}
	content, err := parsed.Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	return content
}

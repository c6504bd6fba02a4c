package lockfile

import (
	"io"
	"os"
	"strconv"
	"strings"
)

// A template is a parsed content template: literal text and fields, in order.
type template struct {
	source       string
	parts        []templatePart
	usesHostname bool
}

type templatePart struct {
	literal string
	field   string // "pid" or "hostname"; empty for a literal
}

// parseTemplate accepts the subset of Python's str.format syntax that
// zc.lockfile's templates use. Refusing the rest up front, rather than when
// the content is written as zc.lockfile does, keeps a bad template from ever
// leaving a held lock or a half-written file.
func parseTemplate(t string) (*template, error) {
	bad := func(reason string) error {
		return &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(t), Reason: reason}
	}
	tmpl := &template{source: t}
	var lit strings.Builder
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '{', '}':
			if i+1 < len(t) && t[i+1] == c {
				lit.WriteByte(c)
				i++
				continue
			}
			if c == '}' {
				return nil, bad("unmatched '}' at byte " + strconv.Itoa(i) + "; write '}}' for a literal brace")
			}
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, bad("unmatched '{' at byte " + strconv.Itoa(i) + "; write '{{' for a literal brace")
			}
			name := t[i+1 : i+end]
			switch {
			case name == "":
				return nil, bad("empty field {}; the fields are {pid} and {hostname}")
			case strings.ContainsAny(name, ":!"):
				return nil, bad("field {" + name + "} has a format spec or conversion, which is not supported")
			case name != "pid" && name != "hostname":
				return nil, bad("unknown field {" + name + "}; the fields are {pid} and {hostname}")
			}
			if lit.Len() > 0 {
				tmpl.parts = append(tmpl.parts, templatePart{literal: lit.String()})
				lit.Reset()
			}
			tmpl.parts = append(tmpl.parts, templatePart{field: name})
			tmpl.usesHostname = tmpl.usesHostname || name == "hostname"
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		tmpl.parts = append(tmpl.parts, templatePart{literal: lit.String()})
	}
	return tmpl, nil
}

// render returns the file's full content: a space, the expanded template and
// a newline. The space keeps the content off byte 0, which is the locked
// byte on Windows and cannot be read there by anyone but the holder.
func (t *template) render() ([]byte, error) {
	hostname := ""
	if t.usesHostname {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	buf := []byte{' '}
	for _, p := range t.parts {
		switch p.field {
		case "":
			buf = append(buf, p.literal...)
		case "pid":
			buf = strconv.AppendInt(buf, int64(os.Getpid()), 10)
		case "hostname":
			buf = append(buf, hostname...)
		}
	}
	return append(buf, '\n'), nil
}

// writeContent replaces the file's content with content. Writing before
// truncating means a reader never sees an empty file where a holder's
// identity was.
func writeContent(f *os.File, content []byte) error {
	if _, err := f.WriteAt(content, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(content)))
}

// holderLimit bounds how much of a holder's content a refused caller reads.
const holderLimit = 4096

// readHolder returns the content a holder wrote, read through f from byte 1
// on: byte 0 is the locked byte on Windows. Reading at an offset leaves the
// file and its position untouched, and any failure just means no holder is
// named. Only the first line counts: a reader that comes between a new
// holder's write and its truncation sees the tail of the old content after
// the new content's newline.
func readHolder(f *os.File) string {
	buf := make([]byte, holderLimit)
	n, err := f.ReadAt(buf, 1)
	if err != nil && err != io.EOF {
		return ""
	}
	firstLine, _, _ := strings.Cut(string(buf[:n]), "\n")
	return strings.TrimSpace(firstLine)
}

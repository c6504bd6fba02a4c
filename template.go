package lockfile

import (
	"fmt"
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
	field   string // "hostname", or empty for a literal, {pid} included
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
			i += end
			if name == "pid" {
				// A Go process never forks without exec, so its pid is
				// known now and for good; New need not ask again.
				lit.WriteString(strconv.Itoa(os.Getpid()))
				continue
			}
			if lit.Len() > 0 {
				tmpl.parts = append(tmpl.parts, templatePart{literal: lit.String()})
				lit.Reset()
			}
			tmpl.parts = append(tmpl.parts, templatePart{field: name})
			tmpl.usesHostname = true
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		tmpl.parts = append(tmpl.parts, templatePart{literal: lit.String()})
	}
	return tmpl, nil
}

// render appends to dst the file's full content: a space, the expanded
// template and a newline. The space keeps the content off byte 0, which is
// the locked byte on Windows and cannot be read there by anyone but the
// holder.
func (t *template) render(dst []byte) ([]byte, error) {
	hostname := ""
	if t.usesHostname {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	buf := append(dst, ' ')
	for _, p := range t.parts {
		switch p.field {
		case "":
			buf = append(buf, p.literal...)
		case "hostname":
			buf = append(buf, hostname...)
		}
	}
	return append(buf, '\n'), nil
}

// ExpandTemplate returns what the content template t expands to in this
// process: the text [New] would write with [WithContentTemplate](t), without
// the leading space and the trailing newline. A template New would refuse
// is refused here with the same [*OptionError]. Call it to name a holder
// in the same words outside a lock file: in a lock kept elsewhere (etcdlock
// stores it as its holder's value), or in a log line.
func ExpandTemplate(t string) (string, error) {
	parsed, err := parseTemplate(t)
	if err != nil {
		return "", err
	}
	content, err := parsed.render(nil)
	if err != nil {
		return "", fmt.Errorf("lockfile: content template: %w", err)
	}
	return string(content[1 : len(content)-1]), nil
}

// Package template parses and expands lock-file content templates, the
// subset of Python's str.format syntax that zc.lockfile's templates use:
// {pid}, {hostname}, and {{ and }} for literal braces. The lockfile package
// writes them into lock files; the command and etcdlock check and expand
// them with it.
package template

import (
	"os"
	"strconv"
	"strings"
)

// A Template is a parsed content template: literal text and fields, in
// order.
type Template struct {
	Source       string // as given to Parse
	parts        []part
	usesHostname bool
}

type part struct {
	literal string
	field   string // "hostname", or empty for a literal, {pid} included
}

// An Error says why a template was refused.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

// Parse accepts what zc.lockfile's templates use and refuses the rest with
// an *Error. Refusing up front, rather than when the content is written
// as zc.lockfile does, keeps a bad template from ever leaving a held lock
// or a half-written file.
func Parse(t string) (*Template, error) {
	bad := func(reason string) error { return &Error{Reason: reason} }
	tmpl := &Template{Source: t}
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
				tmpl.parts = append(tmpl.parts, part{literal: lit.String()})
				lit.Reset()
			}
			tmpl.parts = append(tmpl.parts, part{field: name})
			tmpl.usesHostname = true
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		tmpl.parts = append(tmpl.parts, part{literal: lit.String()})
	}
	return tmpl, nil
}

// Render appends to dst the file's full content: a space, the expanded
// template and a newline. The space keeps the content off byte 0, which is
// the locked byte on Windows and cannot be read there by anyone but the
// holder.
func (t *Template) Render(dst []byte) ([]byte, error) {
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

// Expand returns what t expands to in this process, without the leading
// space and the trailing newline: the holder's name as a lock file would
// give it.
func Expand(t string) (string, error) {
	parsed, err := Parse(t)
	if err != nil {
		return "", err
	}
	content, err := parsed.Render(nil)
	if err != nil {
		return "", err
	}
	return string(content[1 : len(content)-1]), nil
}

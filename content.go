package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ExpandTemplate returns what the content template t expands to in this
// process: the text [New] would write with [WithContentTemplate](t), without
// the leading space and the trailing newline. A template New would refuse
// is refused here with the same [*OptionError]. Other lock implementations,
// such as one kept in a network store, use it to name their holder in the
// same words as a lock file.
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

// A Status says whether a lock is held, and by whom.
type Status struct {
	Held   bool   // someone holds the lock
	Shared bool   // it is held by shared holders ([NewShared]), who write nothing
	Holder string // what [LockError.Holder] would say; empty when Shared
}

// Holder reports whether the lock on the file at path is held, and by
// whom. It opens the file for reading only and never creates, truncates or
// writes it: a missing file is a free lock. A symbolic link is refused as
// [NewSimple] refuses it, and a file that is not a regular file with
// [ErrNotRegular].
//
// Where the system has no call that only asks (flock(2), Windows), Holder
// takes a lock for an instant to tell: a lock attempt at that very
// instant may be refused, and two calls of Holder at the same instant may
// see each other as holders.
func Holder(path string) (Status, error) {
	if holder, state := heldHere(path, false, readHolder); state != free {
		st, err := statPath(path, false)
		if err != nil {
			return Status{}, err
		}
		if err := checkRegular(st, path); err != nil {
			return Status{}, err
		}
		return Status{Held: true, Shared: state == heldShared, Holder: holder}, nil
	}
	f, err := openFile(path, os.O_RDONLY, 0, false)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, err
	}
	defer f.close()
	st, err := f.stat()
	if err != nil {
		return Status{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := checkRegular(st, path); err != nil {
		return Status{}, err
	}
	switch state, err := f.testLock(); {
	case err != nil:
		return Status{}, &fs.PathError{Op: "lock", Path: path, Err: err}
	case state == heldExclusive:
		return Status{Held: true, Holder: readHolder(f)}, nil
	case state == heldShared:
		return Status{Held: true, Shared: true}, nil
	}
	return Status{}, nil
}

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

// writeContent makes the file, which holds size bytes, hold content and
// nothing else. Writing before truncating means a reader never sees an
// empty file where a holder's identity was, and truncating only when the
// file must shrink skips what is usually the costliest call of the cycle.
// The content is written even when the file may hold it already: reading
// to find out would cost as much as the write, and the write keeps the
// file's modification time the time the lock was last taken, as
// zc.lockfile's does.
func writeContent(f sysFile, size int64, content []byte) error {
	if err := f.writeAt(content, 0); err != nil {
		return err
	}
	if size > int64(len(content)) {
		return f.truncate(int64(len(content)))
	}
	return nil
}

// holderLimit bounds how much of a holder's content a refused caller reads.
const holderLimit = 4096

// readHolder returns the content a holder wrote, read through f from byte 1
// on: byte 0 is the locked byte on Windows. Reading at an offset leaves the
// file and its position untouched, and any failure just means no holder is
// named.
func readHolder(f sysFile) string {
	if st, err := f.stat(); err != nil || !st.regular() {
		return "" // a device's bytes name no one
	}
	buf := make([]byte, holderLimit)
	n, err := f.readAt(buf, 1)
	if err != nil {
		return ""
	}
	return holderFrom(buf[:n])
}

// holderFrom names the holder in a lock file's content from byte 1 on. Only
// the first line counts: a reader that comes between a new holder's write
// and its truncation sees the tail of the old content after the new
// content's newline.
func holderFrom(content []byte) string {
	firstLine, _, _ := strings.Cut(string(content), "\n")
	return strings.TrimSpace(firstLine)
}

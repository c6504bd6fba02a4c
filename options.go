package lockfile

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/golockfile/lockfile/internal/template"
)

// An Option changes how a lock is taken. Options are applied in order; a
// later option of the same kind replaces an earlier one. A nil Option is
// refused with an [*OptionError].
type Option func(*config)

type config struct {
	template       *template.Template // nil unless WithContentTemplate was given
	perm           fs.FileMode
	onLock         func(*os.File) error
	followSymlinks bool
	hardLinks      bool
	mode           lockMode // set by NewShared and AcquireShared, not by an option
	content        bool     // set by New and Acquire, which write content
	// Why an option was refused: a later option of the same kind
	// replaces an earlier one, a refused one included.
	nilErr, templateErr, modeErr error
}

// defaultTemplate is what New writes without WithContentTemplate. It is
// parsed once and never changed.
var defaultTemplate, _ = template.Parse("{pid}")

// defaultConfig is the configuration without options, shared so that taking
// a lock without options allocates none. It is never changed.
var defaultConfig = config{perm: 0o644}

// defaultSharedConfig is defaultConfig for a shared lock.
var defaultSharedConfig = config{perm: 0o644, mode: shared}

// defaultContentConfig is defaultConfig for a lock that writes content.
var defaultContentConfig = config{perm: 0o644, content: true}

// mayWrite reports whether the lock file may be written into: by the
// content, or by a hook given the file open for writing.
func (c *config) mayWrite() bool { return c.content || c.onLock != nil && c.mode == exclusive }

func newConfig(opts []Option) (*config, error) {
	if len(opts) == 0 {
		return &defaultConfig, nil
	}
	c := &config{perm: defaultConfig.perm}
	for i, opt := range opts {
		if opt == nil {
			if c.nilErr == nil {
				c.nilErr = &OptionError{Option: "Option", Value: "nil",
					Reason: fmt.Sprintf("option %d of %d is nil", i+1, len(opts))}
			}
			continue
		}
		opt(c)
	}
	for _, err := range []error{c.nilErr, c.templateErr, c.modeErr} {
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// WithContentTemplate sets what [New] and [Acquire] write into the lock file
// once they hold the lock. The default is "{pid}".
//
// The template uses the field syntax of Python's str.format, as zc.lockfile
// does: {pid} is the process id, {hostname} the host name (looked up only
// when the template names it), and {{ and }} are literal braces. Any other
// field, an empty {}, a format spec such as {pid:>8}, or an unmatched brace
// makes New and Acquire return an [*OptionError] before the file is opened.
// [NewSimple] and [AcquireSimple] write no content and refuse this option.
func WithContentTemplate(t string) Option {
	parsed, err := template.Parse(t)
	if err != nil {
		err = &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(t), Reason: err.Error()}
	}
	return func(c *config) { c.template, c.templateErr = parsed, err }
}

// WithMode sets the permission bits of a lock file that does not exist yet
// and is created by this call. The default is 0o644. An existing file keeps
// its permissions. An exclusive lock opens the file for reading and
// writing, so a mode without the owner's read and write (0o600), or with
// bits other than permission bits, makes the call return an [*OptionError].
//
// The process umask clears bits of the mode, as it does for os.OpenFile,
// and is not checked: a umask that clears the owner's read or write makes a
// file that the first lock creates and later locks by its owner cannot open
// (root's excepted).
func WithMode(perm fs.FileMode) Option {
	var reason string
	switch {
	case perm&^fs.ModePerm != 0:
		reason = "only permission bits (0o777) may be set"
	case perm&0o600 != 0o600:
		reason = "the owner must be able to read and write (0o600): an exclusive lock opens the file for both"
	}
	var err error
	if reason != "" {
		err = &OptionError{Option: "WithMode", Value: fmt.Sprintf("%#o", uint32(perm)), Reason: reason}
	}
	return func(c *config) { c.perm, c.modeErr = perm, err }
}

// WithOnLock sets a function that runs once the lock is held, with the
// locked file; for [New] and [Acquire] it runs after the content is
// written. The file is open for reading and writing, or for reading only
// under a shared lock, and the hook may use it freely, for example to keep
// state in it, but must not close it or keep it once it returns. If it
// returns an error, the lock is released and the error is returned
// wrapped.
func WithOnLock(fn func(f *os.File) error) Option {
	return func(c *config) { c.onLock = fn }
}

// WithFollowSymlinks allows the last element of the path to be a symbolic
// link, which is then followed. By default such a path is refused with
// [ErrSymlink], so that a link planted in a shared directory cannot make a
// lock write its content into another file.
func WithFollowSymlinks() Option {
	return func(c *config) { c.followSymlinks = true }
}

// WithHardLinks allows [New], [Acquire] and a [WithOnLock] hook to write
// into a lock file that has more than one name, which they refuse by
// default with [ErrHardLink]. It is for a lock file that is given two names
// on purpose; [WithFollowSymlinks] does not imply it.
func WithHardLinks() Option {
	return func(c *config) { c.hardLinks = true }
}

// templateRefused is the error for a content template given to a lock
// that writes no content.
func templateRefused(c *config, reason string) error {
	return &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template.Source), Reason: reason}
}

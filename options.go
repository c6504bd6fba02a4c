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

// WithContentTemplate sets what [New] and [Acquire] write into the lock
// file, "{pid}" by default. As in zc.lockfile, {pid} is the process id,
// {hostname} the host name, and {{ and }} are braces; any other field,
// format spec or unmatched brace is an [*OptionError]. The calls that write
// no content refuse it.
func WithContentTemplate(t string) Option {
	parsed, err := template.Parse(t)
	if err != nil {
		err = &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(t), Reason: err.Error()}
	}
	return func(c *config) { c.template, c.templateErr = parsed, err }
}

// WithMode sets the permission bits of a lock file this call creates, less
// the umask; the default is 0o644. It must include the owner's read and
// write (0o600) and nothing but permission bits. Anyone who can read a lock
// file can hold its lock, and so keep a service from starting: use 0o600,
// or a directory others cannot read, where other users must not.
func WithMode(perm fs.FileMode) Option {
	var reason string
	switch {
	case perm&^fs.ModePerm != 0:
		reason = "only permission bits (0o777) may be set"
	case perm&0o600 != 0o600:
		reason = "the owner must be able to read and write (0o600): " +
			"an exclusive lock opens the file for both"
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
// link, which [ErrSymlink] refuses by default.
func WithFollowSymlinks() Option {
	return func(c *config) { c.followSymlinks = true }
}

// WithHardLinks allows writing into a lock file that may be a hard link to
// another file, which [ErrHardLink] refuses by default.
func WithHardLinks() Option {
	return func(c *config) { c.hardLinks = true }
}

// templateRefused is the error for a content template given to a lock
// that writes no content.
func templateRefused(c *config, reason string) error {
	return &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template.Source),
		Reason: reason}
}

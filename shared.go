package lockfile

import "context"

// NewShared takes a shared lock on the file at path as [NewSimple] takes an
// exclusive one. Any number of lock objects and processes hold shared locks
// together; an exclusive lock (this package's other calls, zc.lockfile's,
// flock -x) excludes them and is excluded by them, and an exclusive attempt
// refused by them gets a [*LockError] with Shared set. The file is opened
// for reading only, so a directory can be locked too, and
// [WithContentTemplate] is refused.
func NewShared(path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSharedConfig(opts)
	if err != nil {
		return nil, err
	}
	return lockSimple(path, c)
}

// AcquireShared takes a shared lock as [NewShared] does, but while an
// exclusive lock is held it waits as [AcquireSimple] does.
//
// Which waiter gets a released lock is the kernel's choice: on Linux, a
// steady stream of shared holders can keep an exclusive waiter out.
func AcquireShared(ctx context.Context, path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSharedConfig(opts)
	if err != nil {
		return nil, err
	}
	return acquireSimple(ctx, path, c)
}

func newSharedConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	switch {
	case err != nil:
		return nil, err
	case c.template != nil:
		return nil, templateRefused(c, "a shared lock writes no content")
	case c == &defaultConfig:
		return &defaultSharedConfig, nil
	}
	c.mode = shared
	return c, nil
}

package lockfile

import "context"

// NewShared takes a shared lock on the file at path, creating the file if
// it does not exist, and returns at once. Shared locks are held together,
// by any number of lock objects and processes; an exclusive lock (this
// package's other calls, zc.lockfile's, flock -x) excludes them and is
// excluded by them. If an exclusive lock is held, the error is a
// [*LockError] naming its holder; an exclusive attempt refused by shared
// holders gets one with Shared set.
//
// A shared lock writes nothing, so [WithContentTemplate] is refused. The
// file is opened for reading only: a [WithOnLock] hook may read it, and
// its writes fail.
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
// When a lock is released, which waiter gets it is the kernel's choice.
// Linux's flock(2) gives exclusive waiters no preference: a steady stream
// of shared holders can keep an exclusive waiter waiting indefinitely.
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

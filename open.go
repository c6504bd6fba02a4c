package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// lockNow opens the lock file and locks it without waiting. If it cannot
// lock it, it closes it. A lock that this process holds is found before
// the file is opened, where the kernel cannot tell lock objects apart.
func lockNow(path string, c *config) (sysFile, error) {
	switch holder, state := heldHere(path, c.followSymlinks); {
	case state.excludes(c.mode):
		return sysFile{}, &LockError{Path: path, Holder: holder, Shared: state == heldShared,
			Err: ErrLocked}
	case state == heldShared:
		if f, ok := joinHere(path, c.followSymlinks, c.mode); ok {
			return f, nil
		}
	}
	f, err := openLockFile(path, c)
	if err != nil {
		return sysFile{}, err
	}
	if err := f.tryLock(c.mode); err != nil {
		return sysFile{}, lockFailed(f, err)
	}
	return f, nil
}

// maxRemoved bounds how often a lock call starts over because the file it
// locked had been removed: a path such as /proc/self/fd/N of a deleted file
// never names one that has not.
const maxRemoved = 100

// A lockFunc locks the file at path as c asks, waiting or not, and
// describes the locked file: lockNowAndLook or lockWait.
type lockFunc func(ctx context.Context, path string, c *config) (sysFile, fileStat, error)

// take locks the file at path with lock and hands the locked file to l,
// which is returned once it holds the lock.
func take[L interface {
	hold(sysFile, fileStat, *config) error
}](ctx context.Context, l L, path string, c *config, lock lockFunc) (L, error) {
	f, st, err := lock(ctx, path, c)
	if err == nil {
		err = l.hold(f, st, c)
	}
	if err != nil {
		var none L
		return none, err
	}
	return l, nil
}

// lockNowAndLook is lockNow for callers that write into the file, or may:
// it also describes the locked file. If the file was removed between the
// open and the lock, it starts over on the file at the path now. It does
// not wait, so it does not use ctx.
func lockNowAndLook(_ context.Context, path string, c *config) (sysFile, fileStat, error) {
	for range maxRemoved {
		f, err := lockNow(path, c)
		if err != nil {
			return sysFile{}, fileStat{}, err
		}
		st, err := f.stat()
		if err != nil {
			release(f)
			return sysFile{}, fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
		}
		if !st.removed() {
			return f, st, nil
		}
		release(f)
	}
	return sysFile{}, fileStat{}, &fs.PathError{Op: "open", Path: path, Err: errRemoved}
}

// errRemoved reports a path whose file kept having no name once locked.
var errRemoved = fmt.Errorf("the file locked at this path has been removed, %d times in a row: %w",
	maxRemoved, fs.ErrNotExist)

// lockFailed closes f, which is not locked, and describes why.
func lockFailed(f sysFile, err error) error {
	defer f.close()
	if errors.Is(err, ErrLocked) {
		return describeHolder(f, err)
	}
	return &fs.PathError{Op: "lock", Path: f.name, Err: err}
}

// describeHolder returns the LockError for a lock refused with err, naming
// the holder as seen through f.
func describeHolder(f sysFile, err error) *LockError {
	if state, _ := f.testLock(); state == heldShared {
		return &LockError{Path: f.name, Shared: true, Err: err}
	}
	return &LockError{Path: f.name, Holder: readHolder(f), Err: err}
}

// openLockFile opens the lock file for c, creating it if need be. A file
// that may be written into is opened through a directory that
// openTrustedDir accepts, so that the link count read once it is locked
// tells whether it is a planted link.
func openLockFile(path string, c *config) (sysFile, error) {
	if !c.mayWrite() || c.hardLinks {
		return openOrCreate(currentDir(), path, path, c)
	}
	dir, name, err := openTrustedDir(path, c.followSymlinks)
	if err != nil {
		return sysFile{}, err
	}
	defer dir.close()
	return openOrCreate(dir, name, path, c)
}

// openOrCreate opens name in dir, or creates it. It opens without O_CREATE
// first, as zc.lockfile does with "r+" before "a+": Linux's
// fs.protected_regular refuses O_CREATE on another user's file in a sticky
// directory such as /tmp. Neither open truncates: the holder's content
// must survive a refused try.
func openOrCreate(dir dirFile, name, path string, c *config) (sysFile, error) {
	access := os.O_RDWR
	if c.mode == shared {
		access = os.O_RDONLY // a shared lock writes nothing
	}
	createFlag := access | os.O_CREATE | os.O_EXCL
	if c.followSymlinks {
		// O_EXCL never follows a link, so it would refuse a link to a
		// file that does not exist yet.
		createFlag = access | os.O_CREATE
	}
	var (
		f   sysFile
		err error
	)
	for range 8 {
		f, err = dir.open(name, path, access, 0, c.followSymlinks)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		f, err = dir.open(name, path, createFlag, c.perm, c.followSymlinks)
		if !errors.Is(err, fs.ErrExist) {
			break // created, or failed for a reason retrying cannot fix
		}
		// Created by someone else between the two opens: open theirs.
	}
	return f, err
}

// checkRegular refuses a device, a named pipe or a directory as a file to
// write into: content written there would land on a disk, a terminal or
// another program.
func checkRegular(st fileStat, path string) error {
	if !st.regular() {
		return &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	return nil
}

// checkWritable refuses a file that content or a hook must not write into:
// one that is not a regular file, a kernel interface's, or one with a
// second name.
func checkWritable(f sysFile, st fileStat, c *config) error {
	if err := checkRegular(st, f.name); err != nil {
		return err
	}
	if f.kernelInterface(st) {
		return &fs.PathError{Op: "open", Path: f.name, Err: ErrNotRegular}
	}
	return checkLinks(st, f.name, c)
}

// checkHookFile refuses a file that c's hook may not be given: one that is
// not a regular file, or, for a hook that can write, one checkWritable
// refuses.
func checkHookFile(f sysFile, st fileStat, c *config) error {
	if c.mode == shared {
		return checkRegular(st, f.name)
	}
	return checkWritable(f, st, c)
}

// checkLinks refuses a file with more than one name as a file to write
// into, unless c allows it: the other name may be a file someone else cares
// about, linked to the lock path.
func checkLinks(st fileStat, path string, c *config) error {
	if st.linked() && !c.hardLinks {
		return &fs.PathError{Op: "open", Path: path, Err: ErrHardLink}
	}
	return nil
}

// release unlocks f and closes it.
func release(f sysFile) error {
	unlockErr, closeErr := f.unlockAndClose()
	switch {
	case unlockErr != nil:
		return &fs.PathError{Op: "unlock", Path: f.name, Err: errors.Join(unlockErr, closeErr)}
	case closeErr != nil:
		return &fs.PathError{Op: "close", Path: f.name, Err: closeErr}
	}
	return nil
}

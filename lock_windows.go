//go:build windows

package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// A sysFile is a raw handle rather than an *os.File, whose cleanup would
// close the handle, and so release the lock, whenever the garbage collector
// found the lock unreachable.
type sysFile struct {
	h    windows.Handle
	name string // the path as given, as os.File.Name returns it
}

// openFile opens path with flag (os.O_* values). Windows has no O_NOFOLLOW,
// so a link is looked for before the open. That leaves a moment in which a
// link could appear, but creating one needs a privilege on Windows, so a
// planted link is not the threat it is in a shared Unix directory; the check
// keeps the behaviour, and Acquire's check of the path, the same as on Unix.
//
// The file is shared for reading and writing but not deletion, as Go's own
// os.OpenFile shares it: while anyone has it open, it cannot be removed.
func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (sysFile, error) {
	if !followSymlinks {
		if err := refuseSymlink(path); err != nil {
			return sysFile{}, err
		}
	}
	name, err := windows.UTF16PtrFromString(path)
	if err == nil && path == "" {
		err = windows.ERROR_FILE_NOT_FOUND
	}
	if err != nil {
		return sysFile{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	access := uint32(windows.GENERIC_READ)
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		access |= windows.GENERIC_WRITE
	}
	disposition := uint32(windows.OPEN_EXISTING)
	switch {
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		disposition = windows.CREATE_NEW
	case flag&os.O_CREATE != 0:
		disposition = windows.OPEN_ALWAYS
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	if access == windows.GENERIC_READ {
		// Backup semantics let Holder open a directory, to refuse it as
		// not a regular file rather than with a bare access error. A
		// write open of a directory fails as Go's own does.
		attrs |= windows.FILE_FLAG_BACKUP_SEMANTICS
	}
	h, err := windows.CreateFile(name, access, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil,
		disposition, attrs, 0)
	if err != nil {
		return sysFile{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return sysFile{h, path}, nil
}

// The lock covers byte 0 and nothing else, the byte zc.lockfile's
// msvcrt.locking call locks, so both exclude each other. It is held by the
// handle: another handle, in this process or another, is refused.
const (
	lockOffset = 0
	lockLength = 1
)

// tryLock takes the byte-range lock without waiting.
func (f sysFile) tryLock(m lockMode) error {
	return f.lockFileEx(lockFlags[m] | windows.LOCKFILE_FAIL_IMMEDIATELY)
}

var lockFlags = [...]uint32{exclusive: windows.LOCKFILE_EXCLUSIVE_LOCK, shared: 0}

// testLock tells whether someone else holds a lock on the file, taking a
// lock for a moment to find out: Windows has no call that only asks.
func (f sysFile) testLock() (lockState, error) {
	switch err := f.lockFileEx(windows.LOCKFILE_FAIL_IMMEDIATELY); {
	case err == ErrLocked:
		return heldExclusive, nil
	case err != nil:
		return free, err
	}
	if err := f.unlock(); err != nil {
		return free, err
	}
	switch err := f.lockFileEx(windows.LOCKFILE_EXCLUSIVE_LOCK | windows.LOCKFILE_FAIL_IMMEDIATELY); {
	case err == ErrLocked:
		return heldShared, nil
	case err != nil:
		return free, err
	}
	return free, f.unlock()
}

// waitLock takes the lock, blocking in the kernel until it is free. The
// handle is opened for synchronous I/O, so LockFileEx returns only once
// the lock is held.
func (f sysFile) waitLock(m lockMode) error { return f.lockFileEx(lockFlags[m]) }

// detach would let go of the file under a blocked waitLock; Windows has no
// way to do that to a handle, so it reports that it did nothing.
func (sysFile) detach() bool { return false }

func (f sysFile) unlock() error {
	return windows.UnlockFileEx(f.h, 0, lockLength, 0, &windows.Overlapped{Offset: lockOffset})
}

func (f sysFile) lockFileEx(flags uint32) error {
	err := windows.LockFileEx(f.h, flags, 0, lockLength, 0, &windows.Overlapped{Offset: lockOffset})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return ErrLocked
	case errors.Is(err, windows.ERROR_NOT_SUPPORTED), errors.Is(err, windows.ERROR_INVALID_FUNCTION):
		// Some network redirectors and FUSE-like drivers.
		return fmt.Errorf("%w by this file system (LockFileEx: %w)", errUnsupported, err)
	}
	return fmt.Errorf("LockFileEx: %w", err)
}

// unlockAndClose releases the lock held through f and closes it. Windows
// releases a closed handle's locks only when it gets round to it;
// unlocking first releases the lock at once.
func (f sysFile) unlockAndClose() (unlockErr, closeErr error) {
	return f.unlock(), windows.CloseHandle(f.h)
}

// close closes the handle.
func (f sysFile) close() error { return windows.CloseHandle(f.h) }

func (f sysFile) readAt(b []byte, off int64) (int, error) {
	var n uint32
	at := windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
	err := windows.ReadFile(f.h, b, &n, &at)
	if errors.Is(err, windows.ERROR_HANDLE_EOF) {
		err = nil
	}
	return int(n), err
}

func (f sysFile) writeAt(b []byte, off int64) error {
	for len(b) > 0 {
		var n uint32
		at := windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
		err := windows.WriteFile(f.h, b, &n, &at)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (f sysFile) truncate(size int64) error { return windows.Ftruncate(f.h, size) }

// osFile returns a new *os.File on a duplicate of the handle, for callers
// that need one. Closing it leaves the lock held by the original handle.
func (f sysFile) osFile() (*os.File, error) {
	process := windows.CurrentProcess()
	var dup windows.Handle
	err := windows.DuplicateHandle(process, f.h, process, &dup, 0, false,
		windows.DUPLICATE_SAME_ACCESS)
	if err != nil {
		return nil, fmt.Errorf("DuplicateHandle: %w", err)
	}
	return os.NewFile(uintptr(dup), f.name), nil
}

// A fileStat is what this package needs to know of a file: its type, its
// size, which file it is and how many names it has.
type fileStat struct {
	regularFile bool
	size        int64
	links       uint32
	volume      uint32
	index       uint64
}

func (f sysFile) stat() (fileStat, error) {
	kind, err := windows.GetFileType(f.h)
	if err != nil {
		return fileStat{}, err
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(f.h, &info); err != nil {
		return fileStat{}, err
	}
	// A reparse point is not refused here: deduplicated and cloud files
	// are regular files that carry one, and links are refused, or
	// followed, by the open.
	notRegular := windows.FILE_ATTRIBUTE_DIRECTORY | windows.FILE_ATTRIBUTE_DEVICE
	return fileStat{
		regularFile: kind == windows.FILE_TYPE_DISK && info.FileAttributes&uint32(notRegular) == 0,
		size:        int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow),
		links:       info.NumberOfLinks,
		volume:      info.VolumeSerialNumber,
		index:       uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow),
	}, nil
}

// kernelInterface reports a file of procfs, sysfs and the like, which are
// Linux's; Windows has none to refuse.
func (sysFile) kernelInterface(fileStat) bool { return false }

// statPath describes the file at path, or the link there unless
// followSymlinks is set. Windows names a file by volume and index only
// through an open handle, so the path is opened, without any access.
func statPath(path string, followSymlinks bool) (fileStat, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	flags := uint32(windows.FILE_FLAG_BACKUP_SEMANTICS)
	if !followSymlinks {
		flags |= windows.FILE_FLAG_OPEN_REPARSE_POINT
	}
	share := uint32(windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE)
	h, err := windows.CreateFile(name, 0, share, nil, windows.OPEN_EXISTING, flags, 0)
	if err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	defer windows.CloseHandle(h)
	st, err := sysFile{h: h}.stat()
	if err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st, nil
}

func (s fileStat) regular() bool { return s.regularFile }

// removed reports a file deleted while open. Lock files are opened without
// FILE_SHARE_DELETE, so it cannot happen to them, but the check costs
// nothing where the file is looked at anyway.
func (s fileStat) removed() bool { return s.links == 0 }
func (s fileStat) sameFile(other fileStat) bool {
	return s.volume == other.volume && s.index == other.index
}

// linked reports a file with more than one name.
func (s fileStat) linked() bool { return s.links > 1 }

func (f sysFile) handle() uintptr { return uintptr(f.h) }

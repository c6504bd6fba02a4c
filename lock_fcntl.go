//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// POSIX record locks (fcntl F_SETLK on the whole file) belong to the
// process, not to the open file. The kernel grants a second lock object of
// the holding process the lock it holds already, and drops the process's
// lock as soon as the process closes any descriptor of the file. So this
// file keeps a table of the locks this process holds or waits for in the
// kernel: it refuses, or makes wait, a second lock object on a file in the
// table, and it holds back every close of a descriptor of such a file until
// the lock is released. Only Linux built with the lockfile_fcntl tag, AIX
// and Solaris use it; flock(2) and LockFileEx keep lock objects apart
// without help.

// A recordLock is a lock this process holds, or waits for in the kernel.
type recordLock struct {
	fds     []int    // the descriptors of the lock objects that hold it; one unless shared
	file    fileStat // which file it is, once known
	known   bool
	mode    lockMode
	waiting bool          // blocked in F_SETLKW, not yet holding
	parked  []int         // other descriptors of the file, closed at release
	lent    []*os.File    // files lent to hooks, closed at release
	changed chan struct{} // made by a waiter in this process; closed when the lock is taken or released
}

// locks is the table. Its mutex also orders every lock, unlock and close of
// a lock file, so that no close can drop a lock between the kernel granting
// it and the table recording it.
var locks struct {
	sync.Mutex
	all []*recordLock
}

// findLock returns the entry for the file described by st, if any,
// learning the identity of entries taken while the table was empty.
func findLock(st fileStat) *recordLock {
	for _, r := range locks.all {
		if !r.known {
			if rst, err := fstat(r.fds[0]); err == nil {
				r.file, r.known = rst, true
			}
		}
		if r.known && r.file.sameFile(st) {
			return r
		}
	}
	return nil
}

func lockByFD(fd int) *recordLock {
	for _, r := range locks.all {
		if slices.Contains(r.fds, fd) {
			return r
		}
	}
	return nil
}

// joins reports whether a lock of mode m can join r as one more holder:
// shared locks of one process share the process's kernel lock.
func (r *recordLock) joins(m lockMode) bool { return m == shared && r.mode == shared && !r.waiting }

// state is what r means to a caller of heldHere.
func (r *recordLock) state() lockState {
	if r.waiting {
		// Another process holds the lock; ask the kernel how.
		if st, err := (sysFile{r.fds[0]}).testLock(); err == nil && st != free {
			return st
		}
		return heldExclusive
	}
	if r.mode == shared {
		return heldShared
	}
	return heldExclusive
}

// wake tells this process's waiters that r changed.
func (r *recordLock) wake() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// dropLock removes r from the table once its lock is gone, closes the
// descriptors held back for it and wakes this process's waiters.
func dropLock(r *recordLock) {
	locks.all = slices.DeleteFunc(locks.all, func(x *recordLock) bool { return x == r })
	for _, fd := range r.parked {
		unix.Close(fd)
	}
	for _, f := range r.lent {
		f.Close()
	}
	r.wake()
}

// tryLock takes the lock without waiting. It refuses a file on which this
// process holds, or waits for, a lock that excludes it. While the table is
// empty it costs one fcntl and nothing else.
func (f sysFile) tryLock(m lockMode) error {
	locks.Lock()
	defer locks.Unlock()
	var (
		st    fileStat
		known bool
	)
	if len(locks.all) > 0 {
		var err error
		if st, err = fstat(f.fd); err != nil {
			return fmt.Errorf("fstat: %w", err)
		}
		if r := findLock(st); r != nil {
			if !r.joins(m) {
				return ErrLocked
			}
			r.fds = append(r.fds, f.fd)
			return nil
		}
		known = true
	}
	if err := setLock(f.fd, unix.F_SETLK, lockType[m]); err != nil {
		return err
	}
	locks.all = append(locks.all, &recordLock{fds: []int{f.fd}, file: st, known: known, mode: m})
	return nil
}

var lockType = [...]int16{exclusive: unix.F_WRLCK, shared: unix.F_RDLCK}

// waitLock takes the lock, waiting first, without a thread, for the lock
// objects of this process that exclude it to let go, and then in the
// kernel for other processes.
func (f sysFile) waitLock(m lockMode) error {
	st, err := fstat(f.fd)
	if err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	for {
		locks.Lock()
		if r := findLock(st); r != nil {
			if r.joins(m) {
				r.fds = append(r.fds, f.fd)
				locks.Unlock()
				return nil
			}
			if r.changed == nil {
				r.changed = make(chan struct{})
			}
			changed := r.changed
			locks.Unlock()
			<-changed
			continue
		}
		r := &recordLock{fds: []int{f.fd}, file: st, known: true, mode: m, waiting: true}
		locks.all = append(locks.all, r)
		locks.Unlock()

		err := setLockWait(f.fd, lockType[m])
		locks.Lock()
		r.waiting = false
		if err != nil {
			dropLock(r)
		} else {
			r.wake() // shared waiters may join now
		}
		locks.Unlock()
		return err
	}
}

// detach would let go of the file under a blocked waitLock. Here that would
// close a descriptor of the file behind the table's back, which drops every
// lock this process holds on it, so it does nothing and says so.
func (sysFile) detach() bool { return false }

// unlockAndClose releases the lock held through f and closes f, both
// under the table's lock: a lock object of this process that took the
// lock in between would lose it at the close. While other shared holders
// of this process remain, the kernel's lock is theirs too: f is held back
// until the last of them lets go.
func (f sysFile) unlockAndClose() (unlockErr, closeErr error) {
	locks.Lock()
	defer locks.Unlock()
	if r := lockByFD(f.fd); r != nil {
		if len(r.fds) > 1 {
			r.fds = slices.DeleteFunc(r.fds, func(fd int) bool { return fd == f.fd })
			r.parked = append(r.parked, f.fd)
			return nil, nil
		}
		unlockErr = setLock(f.fd, unix.F_SETLK, unix.F_UNLCK)
		dropLock(r)
	}
	return unlockErr, closeFD(f.fd)
}

// close closes the descriptor, or holds it back until the release of a
// lock this process has on the same file, which closing it would drop.
func (f sysFile) close() error {
	locks.Lock()
	defer locks.Unlock()
	if len(locks.all) > 0 {
		if st, err := fstat(f.fd); err == nil {
			if r := findLock(st); r != nil {
				r.parked = append(r.parked, f.fd)
				return nil
			}
		}
	}
	return closeFD(f.fd)
}

// testLock tells whether another process holds a lock on the file. F_GETLK
// only asks; it does not see this process's own locks, which heldHere does.
func (f sysFile) testLock() (lockState, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(f.fd), unix.F_GETLK, &lk); err != nil {
		return free, lockError(err)
	}
	switch lk.Type {
	case unix.F_RDLCK:
		return heldShared, nil
	case unix.F_WRLCK:
		return heldExclusive, nil
	}
	return free, nil
}

// heldHere reports how this process holds, or waits in the kernel for, a
// lock on the file at path, and what read says of the holder, read through
// the lock's own descriptor. It opens nothing, so it can be asked before an
// open whose close would drop that lock.
func heldHere(path string, followSymlinks bool, read func(sysFile) string) (string, lockState) {
	locks.Lock()
	defer locks.Unlock()
	if len(locks.all) == 0 {
		return "", free
	}
	st, err := statPath(path, followSymlinks)
	if err != nil {
		return "", free
	}
	r := findLock(st)
	if r == nil {
		return "", free
	}
	state := r.state()
	if state == heldShared {
		return "", state // shared holders write nothing
	}
	return read(sysFile{r.fds[0]}), state
}

// lendFile runs fn with an *os.File of its own on the locked file. Closing
// it would drop the lock, so it stays open until the lock is released;
// fn must not close it, and if it does, lendFile reports the lock lost.
func (f sysFile) lendFile(name string, fn func(*os.File) error) error {
	file, err := f.osFile(name)
	if err != nil {
		return err
	}
	locks.Lock()
	r := lockByFD(f.fd)
	if r != nil {
		r.lent = append(r.lent, file)
	}
	locks.Unlock()
	if r == nil {
		defer file.Close() // not held: nothing to drop
	}
	err = fn(file)
	if file.Fd() == ^uintptr(0) {
		err = errors.Join(err, errHookClosed)
	}
	return err
}

// errHookClosed reports a hook that closed the file it was lent.
var errHookClosed = errors.New("the hook closed its file, which dropped this process's lock")

func setLock(fd, cmd int, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart} // Start and Len 0: the whole file
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
		if err != unix.EINTR {
			return lockError(err)
		}
	}
}

// setLockWait blocks in F_SETLKW. The kernel answers EDEADLK when waiting
// would close a cycle of processes waiting for each other's locks; flock(2)
// would wait forever there, and so does this, a little at a time.
func setLockWait(fd int, typ int16) error {
	for {
		err := setLock(fd, unix.F_SETLKW, typ)
		if !errors.Is(err, unix.EDEADLK) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lockError(err error) error {
	switch {
	case err == nil:
		return nil
	case err == unix.EAGAIN || err == unix.EACCES:
		return ErrLocked
	case err == unix.ENOLCK || err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.ENOSYS:
		// NFS without a lock manager, and some FUSE and SMB mounts.
		return fmt.Errorf("%w by this file system (fcntl: %w)", ErrUnsupported, err)
	}
	return fmt.Errorf("fcntl: %w", err)
}

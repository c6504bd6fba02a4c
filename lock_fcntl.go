//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// POSIX record locks (fcntl F_SETLK on the whole file) belong to the
// process, not to the open file. The kernel grants a second lock object of
// the holding process the lock it holds already, and drops the process's
// lock as soon as the process closes any descriptor of the file. So this
// file keeps a table of the locks this process holds, the one it inherited
// from lockfile run among them, and of its waits in the kernel: it
// refuses, or makes wait, a second lock object on a file in the table, and
// it holds back every close of a descriptor of such a file until the lock
// is released. Only Linux built with the lockfile_fcntl tag, AIX and
// Solaris use it; flock(2) and LockFileEx keep lock objects apart without
// help.

// A recordLock is a lock this process holds.
// Shared holders of one process share it: they hold the descriptor it was
// taken through, and it is released when the last of them lets go.
type recordLock struct {
	fd      int      // the descriptor the lock was taken through
	file    fileStat // which file it is, once known
	known   bool
	mode    lockMode
	holders int      // lock objects holding it
	parked  []int    // other descriptors of the file, closed at release
	lent    *os.File // the file lent to hooks, closed at release
	lost    bool     // the kernel dropped the lock under its holders; see markLost
}

// A kernelWait is an F_SETLKW call that a thread of this process is
// blocked in. When the kernel grants it, the process's lock on the file
// becomes one of its mode at once, whatever this process's lock objects
// hold; waitLock puts that right before anyone else looks at the table.
type kernelWait struct {
	fd   int
	file fileStat
	mode lockMode
}

// The lock a process inherits from lockfile run, which takes a record lock
// and execs COMMAND in its place, keeping the locked descriptor open:
// run names it in these variables, with the path and its own pid, which
// exec keeps.
const (
	inheritedFDEnv   = "LOCKFILE_FD"
	inheritedPathEnv = "LOCKFILE_PATH"
	inheritedPIDEnv  = "LOCKFILE_PID"
)

// inherited makes the table learn the inherited lock once, before its
// first use; lockTable runs it.
var inherited sync.Once

// lockTable locks the table, which first learns the inherited lock.
func lockTable() {
	inherited.Do(adoptInherited)
	locks.Lock()
}

// adoptInherited enters the lock that lockfile run handed to this process
// into the table, as held by a holder that never lets go: this process's
// lock objects are refused or wait, or share it if both are shared, and
// the table never closes a descriptor of the file. The lock is shared if
// the descriptor is open for reading only, as run -s opens it. Nothing is
// adopted unless the pid named is this process's (a child of COMMAND
// inherits the variables, not the lock) and the descriptor is open on the
// file at the path.
func adoptInherited() {
	pid := os.Getenv(inheritedPIDEnv)
	if pid == "" || pid != strconv.Itoa(os.Getpid()) {
		return
	}
	fd, err := strconv.Atoi(os.Getenv(inheritedFDEnv))
	if err != nil || fd < 0 {
		return
	}
	st, err := fstat(fd)
	if err != nil {
		return
	}
	if at, err := statPath(os.Getenv(inheritedPathEnv), true); err != nil || !at.sameFile(st) {
		return
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return
	}
	m := exclusive
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		m = shared
	}
	locks.Lock()
	defer locks.Unlock()
	locks.all = append(locks.all, &recordLock{fd: fd, file: st, known: true, mode: m, holders: 1})
}

// locks is the table. Its mutex also orders every lock, unlock and close of
// a lock file, so that no close can drop a lock between the kernel granting
// it and the table recording it.
var locks struct {
	sync.Mutex
	all      []*recordLock
	lost     []*recordLock // out of all, their holders not yet told; see markLost
	waits    []*kernelWait // F_SETLKW calls in flight
	detached map[int]bool  // descriptors whose waitLock is to give up; see detach
	changed  chan struct{} // made by a waitLock waiting on the table; closed when it changes
	retries  atomic.Int64  // waits EDEADLK sent back to wait again, which tests count
}

// findLock returns the entry for the file described by st, if any,
// learning the identity of entries taken while the table was empty.
func findLock(st fileStat) *recordLock {
	for _, r := range locks.all {
		if !r.known {
			if rst, err := fstat(r.fd); err == nil {
				r.file, r.known = rst, true
			}
		}
		if r.known && r.file.sameFile(st) {
			return r
		}
	}
	return nil
}

// lockAtPath returns the entry for the file at path, if any.
func lockAtPath(path string, followSymlinks bool) *recordLock {
	if len(locks.all) == 0 {
		return nil
	}
	st, err := statPath(path, followSymlinks)
	if err != nil {
		return nil
	}
	return findLock(st)
}

// lockByFD returns the entry whose lock is held through fd, which is its
// own descriptor or one parked with it.
func lockByFD(fd int) *recordLock {
	for _, r := range locks.all {
		if r.fd == fd || slices.Contains(r.parked, fd) {
			return r
		}
	}
	return nil
}

// lostByFD returns the lost entry whose holders hold fd.
func lostByFD(fd int) *recordLock {
	for _, r := range locks.lost {
		if r.fd == fd || slices.Contains(r.parked, fd) {
			return r
		}
	}
	return nil
}

// markLost records that the kernel no longer holds r's lock for this
// process. r leaves the table, so that the next lock object on the file
// takes a kernel lock of its own or is refused, and waiters here try
// again; each of r's holders learns it at its release, which returns
// errLockLost, and r's descriptors are closed, or parked with a lock taken
// since, when the last one lets go.
func markLost(r *recordLock) {
	locks.all = slices.DeleteFunc(locks.all, func(x *recordLock) bool { return x == r })
	r.lost = true
	locks.lost = append(locks.lost, r)
	loseRecord(r)
	wake()
}

// releaseLost lets one holder of the lost entry r go, and closes r's
// descriptors once none is left. It unlocks nothing: a lock this process
// took on the file since belongs to the process too.
func releaseLost(r *recordLock) error {
	if r.holders--; r.holders > 0 {
		return nil
	}
	locks.lost = slices.DeleteFunc(locks.lost, func(x *recordLock) bool { return x == r })
	for _, fd := range r.parked {
		closeOrPark(fd)
	}
	return closeOrPark(r.fd)
}

// errLockLost reports a lock that the kernel dropped while it was held.
var errLockLost = errors.New("the lock was lost while held: a hook closed a file of it, " +
	"which dropped this process's record lock")

// joins reports whether a lock of mode m can join r as one more holder.
func (r *recordLock) joins(m lockMode) bool { return m == shared && r.mode == shared }

// state is what r means to this process's other lock objects.
func (r *recordLock) state() lockState {
	if r.mode == shared {
		return heldShared
	}
	return heldExclusive
}

// wake tells every waitLock waiting on the table that it changed.
func wake() {
	if locks.changed != nil {
		close(locks.changed)
		locks.changed = nil
	}
}

// tableChanged returns a channel that wake closes.
func tableChanged() <-chan struct{} {
	if locks.changed == nil {
		locks.changed = make(chan struct{})
	}
	return locks.changed
}

// sharedWaitOn reports a shared F_SETLKW in flight on the file. While
// there is one, no lock object of this process may hold the file
// exclusively: the kernel, granting it, would turn that lock into a shared
// one, which another process's shared lock could then join before it was
// turned back.
func sharedWaitOn(st fileStat) bool {
	for _, w := range locks.waits {
		if w.mode == shared && w.file.sameFile(st) {
			return true
		}
	}
	return false
}

// waitByFD returns the F_SETLKW call in flight on fd, if any.
func waitByFD(fd int) *kernelWait {
	for _, w := range locks.waits {
		if w.fd == fd {
			return w
		}
	}
	return nil
}

// dropLock removes r from the table once its lock is gone, closes the
// descriptors held back for it and wakes this process's waiters. The
// caller closes r.fd.
func dropLock(r *recordLock) {
	locks.all = slices.DeleteFunc(locks.all, func(x *recordLock) bool { return x == r })
	for _, fd := range r.parked {
		unix.Close(fd)
	}
	if r.lent != nil {
		r.lent.Close()
	}
	wake()
}

// joinHere makes the caller one more holder of a shared lock that this
// process holds on the file at path, through the lock's own descriptor, so
// that it opens none: each would stay open until the last holder let go.
func joinHere(path string, followSymlinks bool, m lockMode) (sysFile, bool) {
	if m != shared {
		return sysFile{}, false
	}
	lockTable()
	defer locks.Unlock()
	r := lockAtPath(path, followSymlinks)
	if r == nil || !r.joins(m) {
		return sysFile{}, false
	}
	r.holders++
	return sysFile{r.fd, path}, true
}

// tryLock takes the lock without waiting. It refuses a file on which this
// process holds, or waits for, a lock that excludes it. While the table is
// empty it costs one fcntl and nothing else.
func (f sysFile) tryLock(m lockMode) error {
	lockTable()
	defer locks.Unlock()
	var (
		st    fileStat
		known bool
	)
	if len(locks.all) > 0 || len(locks.waits) > 0 {
		var err error
		if st, err = fstat(f.fd); err != nil {
			return fmt.Errorf("fstat: %w", err)
		}
		if r := findLock(st); r != nil {
			if !r.joins(m) {
				return ErrLocked
			}
			r.holders++
			r.parked = append(r.parked, f.fd) // opened since joinHere looked
			return nil
		}
		if m == exclusive && sharedWaitOn(st) {
			return ErrLocked // another process held the lock a moment ago
		}
		known = true
	}
	if err := setLock(f.fd, unix.F_SETLK, lockType[m]); err != nil {
		return err
	}
	locks.all = append(locks.all, &recordLock{fd: f.fd, file: st, known: known, mode: m, holders: 1})
	return nil
}

var lockType = [...]int16{exclusive: unix.F_WRLCK, shared: unix.F_RDLCK}

// waitLock takes the lock, waiting first, without a thread, for the lock
// objects of this process that exclude it to let go, and then in the
// kernel (F_SETLKW) for other processes, so that it takes the lock as soon
// as it is released. The kernel call cannot be given up; detach ends only
// a wait on the table. What the call's lock does to this process's other
// lock objects on the file is put right by settle.
func (f sysFile) waitLock(m lockMode) error {
	st, err := fstat(f.fd)
	if err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	var behind *recordLock // the lock of this process first found in the way
	pause := minDeadlockPause
	for {
		lockTable()
		r := findLock(st)
		if behind == nil {
			behind = r
		}
		detached := locks.detached[f.fd]
		if detached && (r == nil || r != behind) {
			// The caller closes f now. While behind is held, that close
			// would be held back until its release, which for the
			// inherited lock never comes; so until behind goes, a
			// detached wait stays, taking nothing, and the callers that
			// come join it rather than open descriptors of their own.
			delete(locks.detached, f.fd)
			locks.Unlock()
			return errDetached
		}
		if !detached && r != nil && r.joins(m) {
			r.holders++
			r.parked = append(r.parked, f.fd)
			locks.Unlock()
			return nil
		}
		if r != nil || m == exclusive && sharedWaitOn(st) {
			changed := tableChanged()
			locks.Unlock()
			<-changed
			pause = minDeadlockPause
			continue
		}
		err := setLock(f.fd, unix.F_SETLK, lockType[m])
		if err == nil {
			locks.all = append(locks.all, &recordLock{fd: f.fd, file: st, known: true, mode: m, holders: 1})
		}
		if err != ErrLocked {
			locks.Unlock()
			return err
		}
		w := &kernelWait{fd: f.fd, file: st, mode: m}
		locks.waits = append(locks.waits, w)
		locks.Unlock()
		err = setLock(f.fd, unix.F_SETLKW, lockType[m])
		lockTable()
		locks.waits = slices.DeleteFunc(locks.waits, func(x *kernelWait) bool { return x == w })
		wake()
		if err == nil {
			err = w.settle()
		}
		var changed <-chan struct{}
		if err == errDeadlock {
			changed = tableChanged()
		}
		locks.Unlock()
		switch {
		case err == nil:
			return nil
		case err == errDeadlock:
			// The kernel counts every lock of the process as held by
			// this call's owner, and so finds deadlocks between
			// goroutines that wait for nothing of each other's. Try
			// again once this process's locks change, or after a pause
			// that doubles while the kernel keeps refusing.
			locks.retries.Add(1)
			timer := time.NewTimer(pause)
			select {
			case <-timer.C:
			case <-changed:
				timer.Stop()
			}
			pause = min(2*pause, maxDeadlockPause)
		case err == ErrLocked:
			pause = minDeadlockPause
		default:
			return err
		}
	}
}

// The pauses of a wait between F_SETLKW calls that EDEADLK refused.
const (
	minDeadlockPause = time.Millisecond
	maxDeadlockPause = 100 * time.Millisecond
)

// settle runs, with the table locked, once w's F_SETLKW has granted the
// lock, and leaves the process holding what its lock objects hold. It
// returns nil if w's caller holds the lock now, and ErrLocked if it is to
// wait again. Locks taken, released or closed by this process since the
// grant may have changed or dropped the lock; a lock object of this
// process that holds the file keeps what the table says it holds.
func (w *kernelWait) settle() error {
	if r := findLock(w.file); r != nil {
		if r.mode == exclusive || w.mode == exclusive {
			// The grant made the process's lock w's kind: make it r's
			// again. Turning an exclusive lock into a shared one is
			// atomic, and an exclusive r cannot have lost its lock to a
			// shared call (see sharedWaitOn).
			setLock(w.fd, unix.F_SETLK, lockType[r.mode])
		}
		if !r.joins(w.mode) {
			return ErrLocked // waits on the table
		}
		r.holders++
		r.parked = append(r.parked, w.fd)
		return nil
	}
	if w.mode == exclusive && sharedWaitOn(w.file) {
		setLock(w.fd, unix.F_SETLK, unix.F_UNLCK) // the shared call takes its lock again
		return ErrLocked
	}
	// Take it again: a close of a descriptor of the file since the grant
	// would have dropped it, and another process may have it now.
	if err := setLock(w.fd, unix.F_SETLK, lockType[w.mode]); err != nil {
		return err
	}
	locks.all = append(locks.all, &recordLock{fd: w.fd, file: w.file, known: true, mode: w.mode, holders: 1})
	return nil
}

// errDeadlock is what setLock makes of F_SETLKW's EDEADLK.
var errDeadlock = errors.New("fcntl: the kernel reports a deadlock")

// detach makes a waitLock on f that no one waits for any more give up: at
// once, or, if a lock of this process was in its way, once that lock goes
// (see waitLock). A waitLock that holds the lock already or is blocked in
// the kernel cannot be reached: it takes the lock when the holder lets
// go, and its caller releases it. The mark goes when f is closed.
func (f sysFile) detach() bool {
	lockTable()
	defer locks.Unlock()
	if lockByFD(f.fd) != nil || waitByFD(f.fd) != nil {
		return false
	}
	if locks.detached == nil {
		locks.detached = map[int]bool{}
	}
	locks.detached[f.fd] = true
	wake()
	return true
}

// errDetached reports a wait given up by detach.
var errDetached = errors.New("no one waits for this lock any more")

// unlockAndClose releases the lock held through f and closes f, both
// under the table's lock: a lock object of this process that took the
// lock in between would lose it at the close. While other shared holders
// of this process remain, the kernel's lock is theirs too: it is released,
// and its descriptors closed, when the last of them lets go.
func (f sysFile) unlockAndClose() (unlockErr, closeErr error) {
	lockTable()
	defer locks.Unlock()
	r := lockByFD(f.fd)
	if r == nil {
		if r = lostByFD(f.fd); r != nil {
			return errLockLost, releaseLost(r)
		}
		return nil, closeOrPark(f.fd) // holds no lock; another lock object may
	}
	if r.holders--; r.holders > 0 {
		return nil, nil
	}
	unlockErr = setLock(r.fd, unix.F_SETLK, unix.F_UNLCK)
	dropLock(r)
	return unlockErr, closeFD(r.fd)
}

// close closes the descriptor, or holds it back until the release of a
// lock this process has on the same file, which closing it would drop.
func (f sysFile) close() error {
	lockTable()
	defer locks.Unlock()
	return closeOrPark(f.fd)
}

// closeOrPark is close, with the table's lock held. It clears a mark that
// detach left on fd, which a later descriptor of that number must not see.
func closeOrPark(fd int) error {
	delete(locks.detached, fd)
	if len(locks.all) > 0 {
		if st, err := fstat(fd); err == nil {
			if r := findLock(st); r != nil {
				r.parked = append(r.parked, fd)
				return nil
			}
		}
	}
	return closeFD(fd)
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

// heldHere reports how this process holds a lock on the file at path, and
// the holder, read through the lock's own descriptor. It
// opens nothing, so it can be asked before an open whose close would drop
// that lock.
func heldHere(path string, followSymlinks bool) (string, lockState) {
	lockTable()
	defer locks.Unlock()
	r := lockAtPath(path, followSymlinks)
	switch {
	case r == nil:
		return "", free
	case r.state() == heldShared:
		return "", heldShared // shared holders write nothing
	}
	return readHolder(sysFile{fd: r.fd}), heldExclusive
}

// lendFile runs fn with an *os.File on the locked file. Closing it would
// drop the lock, so it stays open until the lock is released, and shared
// holders of this process share one; fn must not close it, and if it does,
// lendFile reports it, and the lock is marked lost for every holder.
func (f sysFile) lendFile(fn func(*os.File) error) error {
	lockTable()
	r := lockByFD(f.fd)
	if r == nil {
		locks.Unlock()
		return errors.New("lending a file of a lock that is not held")
	}
	if r.lent == nil {
		file, err := f.osFile()
		if err != nil {
			locks.Unlock()
			return err
		}
		r.lent = file
	}
	file := r.lent
	locks.Unlock()
	// Each hook starts at the beginning, as with a file of its own; shared
	// holders' hooks that run at once share the offset, so they should read
	// with ReadAt.
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	err := fn(file)
	if file.Fd() == ^uintptr(0) {
		err = errors.Join(err, errHookClosed)
		lockTable()
		if !r.lost {
			markLost(r)
		}
		locks.Unlock()
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

func lockError(err error) error {
	switch {
	case err == nil:
		return nil
	case err == unix.EAGAIN || err == unix.EACCES:
		return ErrLocked
	case err == unix.EDEADLK:
		return errDeadlock
	case err == unix.ENOLCK || err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.ENOSYS:
		// NFS without a lock manager, and some FUSE and SMB mounts.
		return fmt.Errorf("%w by this file system (fcntl: %w)", errUnsupported, err)
	}
	return fmt.Errorf("fcntl: %w", err)
}

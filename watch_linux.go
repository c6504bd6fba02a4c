package lockfile

import (
	"encoding/binary"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// inotify notifies about watched files on Linux. Its descriptor is read
// through the runtime's network poller, so that its goroutine holds no
// thread while it waits, and a deadline gives the wait its timeout.
//
// While a descriptor of the file is open, a remove and a rename over the
// file raise IN_ATTRIB (the link count drops), and a rename away raises
// IN_MOVE_SELF; so do a new link, a chmod and a touch, which the look that
// follows tells apart.
type inotify struct {
	f     *os.File
	fd    int
	woken atomic.Bool
	buf   [4096]byte
}

const inotifyMask = unix.IN_ATTRIB | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF

func newNotifier() (notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &inotify{f: os.NewFile(uintptr(fd), "inotify"), fd: fd}, nil
}

// add watches the locked file itself, named through /proc/self/fd
// whatever the path names now, or through the path where /proc is not
// mounted. ENOSPC, the user's watches used up, makes the watch a polled one.
func (n *inotify) add(w *lossWatch) (int, error) {
	wd, err := unix.InotifyAddWatch(n.fd, "/proc/self/fd/"+strconv.Itoa(w.f.fd), inotifyMask)
	if err == unix.ENOENT {
		wd, err = unix.InotifyAddWatch(n.fd, w.path, inotifyMask)
	}
	return wd, err
}

func (n *inotify) remove(key int) { unix.InotifyRmWatch(n.fd, uint32(key)) }

func (n *inotify) close() { n.f.Close() }

// wake sets the flag before the deadline, and wait sets its deadline
// before it reads the flag, so that no wake is missed.
func (n *inotify) wake() {
	n.woken.Store(true)
	n.f.SetReadDeadline(time.Unix(1, 0))
}

func (n *inotify) wait(timeout time.Duration, keys []notice) ([]notice, bool) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := n.f.SetReadDeadline(deadline); err != nil {
		return keys, false
	}
	if n.woken.Swap(false) {
		return keys, true
	}
	nr, err := n.f.Read(n.buf[:])
	if err != nil {
		return keys, os.IsTimeout(err)
	}
	for off := 0; off+unix.SizeofInotifyEvent <= nr; {
		wd := int32(binary.NativeEndian.Uint32(n.buf[off:]))
		mask := binary.NativeEndian.Uint32(n.buf[off+4:])
		size := binary.NativeEndian.Uint32(n.buf[off+12:])
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			keys = append(keys, notice{key: allKeys})
		default:
			keys = append(keys, notice{key: int(wd), gone: mask&unix.IN_IGNORED != 0})
		}
		off += unix.SizeofInotifyEvent + int(size)
	}
	return keys, true
}

//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package lockfile

import (
	"time"

	"golang.org/x/sys/unix"
)

// kqueue notifies about watched files on macOS and the BSDs, through each
// lock's own descriptor (EVFILT_VNODE), so no file is opened for it. Any
// change of the file's names or attributes wakes the watcher, whose look
// tells a loss from a new link or a chmod.
type kqueue struct {
	fd     int
	events [64]unix.Kevent_t
}

const kqueueNotes = unix.NOTE_DELETE | unix.NOTE_RENAME | unix.NOTE_LINK | unix.NOTE_ATTRIB |
	unix.NOTE_REVOKE

// wakeTimer is the ident of the one-shot timer that wake sets; timers'
// idents are apart from descriptors'.
const wakeTimer = 0

func newNotifier() (notifier, error) {
	fd, err := unix.Kqueue()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return &kqueue{fd: fd}, nil
}

func (k *kqueue) add(w *lossWatch) (int, error) {
	return w.f.fd, k.change(w.f.fd, unix.EVFILT_VNODE, unix.EV_ADD|unix.EV_CLEAR, kqueueNotes, 0)
}

func (k *kqueue) remove(key int) { k.change(key, unix.EVFILT_VNODE, unix.EV_DELETE, 0, 0) }

func (k *kqueue) close() { unix.Close(k.fd) }

// wake sets a timer that fires at once; it stays set until a wait sees it.
func (k *kqueue) wake() {
	k.change(wakeTimer, unix.EVFILT_TIMER, unix.EV_ADD|unix.EV_ONESHOT, 0, 1)
}

func (k *kqueue) change(ident, filter, flags int, fflags uint32, data int64) error {
	var ev unix.Kevent_t
	unix.SetKevent(&ev, ident, filter, flags)
	ev.Fflags = fflags
	ev.Data = data
	changes := []unix.Kevent_t{ev}
	for {
		_, err := unix.Kevent(k.fd, changes, nil, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

func (k *kqueue) wait(timeout time.Duration, keys []notice) ([]notice, bool) {
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(timeout.Nanoseconds())
		ts = &t
	}
	n, err := unix.Kevent(k.fd, nil, k.events[:], ts)
	if err == unix.EINTR {
		return keys, true
	}
	if err != nil {
		return keys, false
	}
	for _, ev := range k.events[:n] {
		if ev.Filter == unix.EVFILT_VNODE {
			keys = append(keys, notice{key: int(ev.Ident), gone: ev.Flags&unix.EV_ERROR != 0})
		}
	}
	return keys, true
}

//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import "testing"

// markLost, called when the process's record lock on a file is found
// gone, closes Lost for the lock objects holding it that watch, and for
// those that ask later; other locks, and a later lock on the same file,
// are not lost.
func TestLostReportedByRecordLockTable(t *testing.T) {
	noWatcherAfter(t)
	path := tempLockPath(t)
	watching, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer watching.Close()
	asksLater, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer asksLater.Close()
	other, err := NewSimple(tempLockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lost, otherLost := watching.Lost(), other.Lost()

	locks.Lock()
	markLost(lockByFD(int(watching.Fd())))
	locks.Unlock()

	if !isClosed(lost) {
		t.Fatal("Lost of a watching holder is open after markLost")
	}
	if !isClosed(asksLater.Lost()) {
		t.Fatal("Lost of a holder that asks after markLost is open")
	}
	if isClosed(otherLost) {
		t.Fatal("Lost of a lock on another file closed")
	}
	watching.Close()
	asksLater.Close()
	again, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if isClosed(again.Lost()) {
		t.Fatal("Lost of a new lock on the file is closed")
	}
}

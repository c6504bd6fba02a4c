//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import "slices"

// lostRecords holds the entries of the lock table whose kernel lock the
// process has lost while lock objects still hold them. It is guarded by
// the table's mutex; entries gone from the table are dropped at the next
// loss.
var lostRecords map[*recordLock]bool

// loseRecord is for the code that finds the process's lock on r's file
// gone, such as a hook that closed the file it was lent, which drops every
// record lock of the process on the file: it closes the Lost channel of
// every lock object holding r, and Lost of those that ask later returns a
// closed channel. The caller holds the table's mutex.
func loseRecord(r *recordLock) {
	for x := range lostRecords {
		if !slices.Contains(locks.all, x) {
			delete(lostRecords, x)
		}
	}
	if lostRecords == nil {
		lostRecords = map[*recordLock]bool{}
	}
	lostRecords[r] = true
	loseWatches(func(f sysFile) bool { return lockByFD(f.fd) == r })
}

// knownLost reports whether f holds a record lock that loseRecord found
// lost. While none is, it costs no look through the table.
func (f sysFile) knownLost() bool {
	locks.Lock()
	defer locks.Unlock()
	if len(lostRecords) == 0 {
		return false
	}
	r := lockByFD(f.fd)
	return r != nil && lostRecords[r]
}

// loseWatches closes the Lost channels of the watched locks whose
// descriptors match, and stops watching them.
func loseWatches(match func(sysFile) bool) {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	var lost []*lossWatch
	for _, ws := range watcher.notified {
		for _, w := range ws {
			if match(w.f) {
				lost = append(lost, w)
			}
		}
	}
	for w := range watcher.polled {
		if match(w.f) {
			lost = append(lost, w)
		}
	}
	for _, w := range lost {
		w.lose()
		unwatchLocked(w)
	}
}

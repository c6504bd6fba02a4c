//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import "slices"

// loseRecord closes the Lost channel of every watched lock object holding
// r, whose kernel lock the process lost (see markLost). The caller holds
// the table's mutex.
func loseRecord(r *recordLock) {
	loseWatches(func(f sysFile) bool { return f.fd == r.fd || slices.Contains(r.parked, f.fd) })
}

// knownLost reports whether f holds a record lock that markLost found lost.
func (f sysFile) knownLost() bool {
	locks.Lock()
	defer locks.Unlock()
	return lostByFD(f.fd) != nil
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

//go:build unix && !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package lockfile

// newNotifier returns a notifier that notifies about nothing: on AIX,
// Solaris and illumos the watcher looks at every watched lock every
// pollInterval.
func newNotifier() (notifier, error) { return newPollNotifier(), nil }

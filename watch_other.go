//go:build !unix

package lockfile

// On Windows a held lock file cannot be removed or renamed, and elsewhere
// no lock is ever held: there is nothing to watch, and Lost closes at
// Close.

func watch(*lossWatch)   {}
func unwatch(*lossWatch) {}
func endIdle()           {}

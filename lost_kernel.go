//go:build !(aix || (solaris && !illumos) || (linux && lockfile_fcntl))

package lockfile

// knownLost reports whether the package found f's lock lost: where the
// kernel keeps lock objects apart, it never does.
func (sysFile) knownLost() bool { return false }

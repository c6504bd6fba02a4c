//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd || windows)

package lockfile

import (
	"io/fs"
	"os"
)

// On AIX and Solaris only fcntl(2) locks exist. They belong to the process,
// not the open file, and closing any descriptor of the file drops them, so
// they cannot keep two lock objects of one process apart. Here, as on
// platforms with no locking at all, every attempt fails before the file is
// opened or created.

type sysFile struct{}

func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (sysFile, error) {
	return sysFile{}, &fs.PathError{Op: "open", Path: path, Err: ErrUnsupported}
}

func (sysFile) tryLock() error                    { return ErrUnsupported }
func (sysFile) tryLockShared() error              { return ErrUnsupported }
func (sysFile) waitLock() error                   { return ErrUnsupported }
func (sysFile) unlock() error                     { return ErrUnsupported }
func (sysFile) detach() bool                      { return false }
func (sysFile) close() error                      { return ErrUnsupported }
func (sysFile) readAt([]byte, int64) (int, error) { return 0, ErrUnsupported }
func (sysFile) writeAt([]byte, int64) error       { return ErrUnsupported }
func (sysFile) truncate(int64) error              { return ErrUnsupported }
func (sysFile) osFile(string) (*os.File, error)   { return nil, ErrUnsupported }
func (sysFile) stat() (fileStat, error)           { return fileStat{}, ErrUnsupported }
func (sysFile) kernelInterface(fileStat) bool     { return false }
func statPath(string, bool) (fileStat, error)     { return fileStat{}, ErrUnsupported }
func (fileStat) removed() bool                    { return false }
func (fileStat) linked() bool                     { return false }
func (fileStat) regular() bool                    { return false }
func (fileStat) sameFile(fileStat) bool           { return false }

type fileStat struct{ size int64 }

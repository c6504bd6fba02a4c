//go:build !unix && !windows

package lockfile

import (
	"io/fs"
	"os"
)

// js/wasm, wasip1 and plan9 have no file locking that excludes another
// process. Here every attempt fails before the file is opened or created.

type sysFile struct{ name string }

func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (sysFile, error) {
	return sysFile{}, &fs.PathError{Op: "lock", Path: path, Err: errUnsupported}
}

func (sysFile) tryLock(lockMode) error            { return errUnsupported }
func (sysFile) testLock() (lockState, error)      { return free, errUnsupported }
func (sysFile) waitLock(lockMode) error           { return errUnsupported }
func (sysFile) detach() bool                      { return false }
func (sysFile) unlockAndClose() (error, error)    { return errUnsupported, nil }
func (sysFile) close() error                      { return errUnsupported }
func (sysFile) readAt([]byte, int64) (int, error) { return 0, errUnsupported }
func (sysFile) writeAt([]byte, int64) error       { return errUnsupported }
func (sysFile) truncate(int64) error              { return errUnsupported }
func (sysFile) osFile() (*os.File, error)         { return nil, errUnsupported }

func (sysFile) stat() (fileStat, error)       { return fileStat{}, errUnsupported }
func (sysFile) kernelInterface(fileStat) bool { return false }
func statPath(string, bool) (fileStat, error) { return fileStat{}, errUnsupported }
func (fileStat) removed() bool                { return false }
func (fileStat) linked() bool                 { return false }
func (fileStat) regular() bool                { return false }
func (fileStat) sameFile(fileStat) bool       { return false }

type fileStat struct{ size int64 }

func (sysFile) handle() uintptr { return ^uintptr(0) }

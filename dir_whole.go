//go:build !unix

package lockfile

import "io/fs"

// Paths are opened whole. Windows has no planted-link race: the lock file is
// opened without FILE_SHARE_DELETE, and no name of a file open that way can
// be removed, so a link planted at the path before the open is still there
// when the link count is read after the lock. Elsewhere nothing locks.

// A dirFile is a directory that names are opened in.
type dirFile struct{}

func currentDir() dirFile { return dirFile{} }

func openTrustedDir(path string, followSymlinks bool) (dirFile, string, error) {
	return dirFile{}, path, nil
}

func (dirFile) open(_, path string, flag int, perm fs.FileMode,
	followSymlinks bool) (sysFile, error) {
	return openFile(path, flag, perm, followSymlinks)
}

func (dirFile) close() error { return nil }

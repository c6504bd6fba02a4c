package lockfile

import (
	"strings"
)

// writeContent makes the file, which holds size bytes, hold content and
// nothing else. Writing before truncating means a reader never sees an
// empty file where a holder's identity was, and truncating only when the
// file must shrink skips what is usually the costliest call of the cycle.
// The content is written even when the file may hold it already: reading
// to find out would cost as much as the write, and the write keeps the
// file's modification time the time the lock was last taken, as
// zc.lockfile's does.
func writeContent(f sysFile, size int64, content []byte) error {
	if err := f.writeAt(content, 0); err != nil {
		return err
	}
	if size > int64(len(content)) {
		return f.truncate(int64(len(content)))
	}
	return nil
}

// holderLimit bounds how much of a holder's content a refused caller reads.
const holderLimit = 4096

// readHolder returns the content a holder wrote, read through f from byte 1
// on: byte 0 is the locked byte on Windows. Reading at an offset leaves the
// file and its position untouched, and any failure just means no holder is
// named.
func readHolder(f sysFile) string {
	if st, err := f.stat(); err != nil || !st.regular() {
		return "" // a device's bytes name no one
	}
	buf := make([]byte, holderLimit)
	n, err := f.readAt(buf, 1)
	if err != nil {
		return ""
	}
	return holderFrom(buf[:n])
}

// holderFrom names the holder in a lock file's content from byte 1 on. Only
// the first line counts: a reader that comes between a new holder's write
// and its truncation sees the tail of the old content after the new
// content's newline.
func holderFrom(content []byte) string {
	firstLine, _, _ := strings.Cut(string(content), "\n")
	return strings.TrimSpace(firstLine)
}

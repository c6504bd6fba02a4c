//go:build unix || windows

package lockfile

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runMutate is the helper that changes files for the Lost tests: it reads
// one command a line ("op path [path]") and answers each with "done" and
// the wall-clock time, in nanoseconds, just before the change.
func runMutate() int {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		start := time.Now().UnixNano()
		var err error
		switch f[0] {
		case "rm":
			err = os.Remove(f[1])
		case "mv":
			err = os.Rename(f[1], f[2])
		case "recreate": // remove the file and create a new one at the path
			if err = os.Remove(f[1]); err == nil {
				err = os.WriteFile(f[1], nil, 0o644)
			}
		case "create":
			err = os.WriteFile(f[1], nil, 0o644)
		case "link":
			err = os.Link(f[1], f[2])
		case "write": // append, leaving the content a holder wrote
			var file *os.File
			if file, err = os.OpenFile(f[1], os.O_WRONLY|os.O_APPEND, 0); err == nil {
				_, err = file.WriteString("more\n")
				file.Close()
			}
		case "chmod":
			err = os.Chmod(f[1], 0o600)
		case "touch":
			now := time.Now().Add(time.Hour)
			err = os.Chtimes(f[1], now, now)
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		fmt.Printf("done %d\n", start)
	}
	return 0
}

// watcherGoroutines counts the goroutines running the watcher's loop, once
// the count has come down to want, or after a few seconds.
func watcherGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := strings.Count(string(buf[:runtime.Stack(buf, true)]), "lockfile.watchLoop(")
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// noWatcherAfter makes t wait at its end until the watcher's goroutine is
// gone, and fail if it stays, and closes the notifier it leaves idle: the
// tests after it count goroutines and descriptors.
func noWatcherAfter(t *testing.T) {
	t.Cleanup(func() {
		if n := watcherGoroutines(0); n != 0 {
			t.Errorf("%d watchers still run after the test", n)
		}
		endIdle()
	})
}

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestLostOfNilAndClosedLocks(t *testing.T) {
	noWatcherAfter(t)
	var nilSimple *SimpleLockFile
	var nilLock *LockFile
	if !isClosed(nilSimple.Lost()) || !isClosed(nilLock.Lost()) {
		t.Fatal("Lost of a nil lock is not closed")
	}
	if !isClosed(new(SimpleLockFile).Lost()) || !isClosed(new(LockFile).Lost()) {
		t.Fatal("Lost of a zero lock is not closed")
	}
	l, err := New(tempLockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	lost := l.Lost()
	if isClosed(lost) {
		t.Fatal("Lost of a held lock is closed")
	}
	if l.Lost() != lost {
		t.Fatal("Lost returned another channel on a second call")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(lost) || !isClosed(l.Lost()) {
		t.Fatal("Lost is not closed after Close")
	}
}

// Close closes Lost even when Lost was first called after the lock was
// taken in another goroutine, and a select on it returns.
func TestLostClosedByCloseWakesSelect(t *testing.T) {
	noWatcherAfter(t)
	l, err := NewSimple(tempLockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan struct{})
	go func() {
		<-l.Lost()
		close(woke)
	}()
	time.Sleep(time.Millisecond)
	l.Close()
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("a goroutine waiting on Lost was not woken by Close")
	}
}

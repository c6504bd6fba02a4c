//go:build unix

package lockfile_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/golockfile/lockfile"
)

// heldLock is what a service needs of its lock; a *lockfile.LockFile and
// an etcdlock.Lock both have it.
type heldLock interface {
	Lost() <-chan struct{}
	Close() error
}

// serve does the work the lock guards, one step at a time, until the lock
// is lost.
func serve(lock heldLock, step func()) {
	for {
		select {
		case <-lock.Lost():
			return
		default:
			step()
		}
	}
}

// A service works while it holds its lock and stops as soon as the lock
// file is deleted under it (by a cleaner of old files, say): from then on
// another process could lock a new file at the path. It takes the lock
// again to go on.
func ExampleLockFile_Lost() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "service.lock")

	lock, err := lockfile.New(path)
	if err != nil {
		log.Fatal(err)
	}
	time.AfterFunc(10*time.Millisecond, func() { os.Remove(path) })
	serve(lock, func() { time.Sleep(time.Millisecond) })
	lock.Close()
	fmt.Println("lock lost: work stopped")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock, err = lockfile.Acquire(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()
	select {
	case <-lock.Lost():
		fmt.Println("lost again")
	default:
		fmt.Println("locked again; work goes on")
	}
	// Output:
	// lock lost: work stopped
	// locked again; work goes on
}

//go:build unix || windows

package lockfile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/golockfile/lockfile"
)

// tempDir stands in for the directory a service keeps its lock file in.
func tempDir() string {
	dir, err := os.MkdirTemp("", "lockfile-example")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

// The whole cycle: take the lock, be refused while it is held, release it.
// The file stays behind, which is harmless: only the lock counts.
func Example() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "service.lock")

	lock, err := lockfile.New(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("locked")

	_, err = lockfile.New(path)
	fmt.Println("second attempt refused:", errors.Is(err, lockfile.ErrLocked))

	if err := lock.Close(); err != nil {
		log.Fatal(err)
	}
	_, err = os.Stat(path)
	fmt.Println("file kept after Close:", err == nil)

	again, err := lockfile.New(path)
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()
	fmt.Println("locked again")
	// Output:
	// locked
	// second attempt refused: true
	// file kept after Close: true
	// locked again
}

// Start-up code that refuses to run twice, and says who is running.
func ExampleLockError() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "web.lock")
	// Another instance is running already.
	running, err := lockfile.New(path, lockfile.WithContentTemplate("web-1 pid 4242"))
	if err != nil {
		log.Fatal(err)
	}
	defer running.Close()

	_, err = lockfile.New(path, lockfile.WithContentTemplate("{pid};{hostname}"))
	var lockErr *lockfile.LockError
	switch {
	case errors.As(err, &lockErr):
		fmt.Printf("another instance is running: %s\n", lockErr.Holder)
	case err != nil:
		fmt.Println("cannot take the lock:", err) // a missing directory, say
	default:
		fmt.Println("started")
	}
	// Output:
	// another instance is running: web-1 pid 4242
}

// The content names the holder in zc.lockfile's format: a space, the
// expanded template, a newline. The host name tells containers apart, which
// often all run as the same pid.
func ExampleWithContentTemplate() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "worker.lock")

	// The hook sees the file as written. Read a held lock file only there,
	// or with Inspect: where locks belong to the process (AIX, Solaris),
	// opening and closing the file elsewhere would drop the lock.
	var onDisk []byte
	lock, err := lockfile.New(path,
		lockfile.WithContentTemplate("{pid};{hostname}"),
		lockfile.WithOnLock(func(f *os.File) (err error) {
			onDisk, err = io.ReadAll(io.NewSectionReader(f, 0, 4096))
			return err
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()

	host, _ := os.Hostname()
	general := strings.NewReplacer(strconv.Itoa(os.Getpid()), "PID", host, "HOST")
	fmt.Printf("%q\n", general.Replace(string(onDisk)))
	fmt.Println(general.Replace(lock.Content()))
	// Output:
	// " PID;HOST\n"
	// PID;HOST
}

// A SimpleLockFile writes nothing itself; a hook can keep state in the
// locked file, here a JSON counter of how often the lock was taken.
func ExampleWithOnLock() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.lock")

	type state struct{ Runs int }
	bumpRuns := func(f *os.File) error {
		var s state
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &s); err != nil {
				return err
			}
		}
		s.Runs++
		data, _ = json.Marshal(s)
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err = f.WriteAt(data, 0)
		return err
	}
	for range 3 {
		lock, err := lockfile.NewSimple(path, lockfile.WithOnLock(bumpRuns))
		if err != nil {
			log.Fatal(err)
		}
		lock.Close()
	}
	data, _ := os.ReadFile(path)
	fmt.Println(string(data))
	// Output:
	// {"Runs":3}
}

// Start-up code that waits a while for a previous instance to let go, and
// otherwise reports who still holds the lock.
func ExampleAcquire() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "migrations.lock")
	previous, err := lockfile.New(path, lockfile.WithContentTemplate("migrator on db-2"))
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = lockfile.Acquire(ctx, path)
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) && errors.Is(err, context.DeadlineExceeded) {
		fmt.Printf("gave up waiting; held by %s\n", lockErr.Holder)
	}

	// Once the holder lets go, a waiter takes over at once.
	go func() {
		time.Sleep(10 * time.Millisecond)
		previous.Close()
	}()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock, err := lockfile.Acquire(ctx, path, lockfile.WithContentTemplate("migrator on db-3"))
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()
	fmt.Println("took over:", lock.Content())
	// Output:
	// gave up waiting; held by migrator on db-2
	// took over: migrator on db-3
}

// Inspect tells whether a lock is held, and by whom, without taking it and
// without creating the file, as a status command would.
func ExampleInspect() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "service.lock")

	status, err := lockfile.Inspect(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", status.Held)

	lock, err := lockfile.New(path, lockfile.WithContentTemplate("nightly-backup"))
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()

	status, err = lockfile.Inspect(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", status.Held, "by", status.Holder)
	// Output:
	// held: false
	// held: true by nightly-backup
}

// Many readers use a cache directory at once under shared locks, while a
// writer that rebuilds it takes the exclusive lock and waits for them to
// finish.
func ExampleNewShared() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cache.lock")

	reader1, err := lockfile.NewShared(path)
	if err != nil {
		log.Fatal(err)
	}
	reader2, err := lockfile.NewShared(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("two readers")

	_, err = lockfile.NewSimple(path)
	var lockErr *lockfile.LockError
	fmt.Println("writer refused by shared holders:", errors.As(err, &lockErr) && lockErr.Shared)

	// The writer waits until both readers let go.
	go func() {
		time.Sleep(10 * time.Millisecond)
		reader1.Close()
		reader2.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	writer, err := lockfile.AcquireSimple(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close()
	fmt.Println("writer rebuilds the cache")
	// Output:
	// two readers
	// writer refused by shared holders: true
	// writer rebuilds the cache
}

//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crossWaitEnv runs the helper of TestWaitsThatCrossAreNotADeadlock:
// "HELD WANTED" (run from init, before TestMain).
const crossWaitEnv = "LOCKFILE_TEST_CROSS_WAIT"

func init() {
	if spec := os.Getenv(crossWaitEnv); spec != "" {
		held, wanted, _ := strings.Cut(spec, " ")
		os.Exit(runCrossWait(held, wanted))
	}
}

// runCrossWait holds the lock on held, and once told waits for the one on
// wanted, reporting what the wait returned; it lets go when stdin closes.
// While it waits, it reports the first of these: "deadlock" once the
// kernel has refused its wait with EDEADLK, "blocked" once the wait is
// blocked in the kernel, or "neither" after 30 seconds.
func runCrossWait(held, wanted string) int {
	l, err := NewSimple(held)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("holding")
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for ; time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			switch {
			case locks.retries.Load() > 0:
				fmt.Println("deadlock")
				return
			case kernelWaits() > 0:
				fmt.Println("blocked")
				return
			}
		}
		fmt.Println("neither")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := AcquireSimple(ctx, wanted)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("got")
	io.Copy(io.Discard, in)
	w.Close()
	l.Close()
	return 0
}

// A shared holder's hook that closes its file drops the process's record
// lock under every shared holder of the process. The table must not keep
// the lock as held: the next shared lock takes a kernel lock of its own, or
// is refused while another process holds the lock exclusively, and the
// holders that lost the lock learn it at Close.
func TestSharedHookThatClosesItsFileLosesTheLockForAll(t *testing.T) {
	path := tempLockPath(t)
	first, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	lost := first.Lost()
	closer := WithOnLock(func(f *os.File) error { return f.Close() })
	if _, err := NewShared(path, closer); err == nil || !strings.Contains(err.Error(), "hook closed its file") {
		t.Fatalf("NewShared with a hook that closed its file = %v, want it to say so", err)
	}
	if !isClosed(lost) {
		t.Fatal("Lost of a shared holder whose kernel lock a hook dropped is open")
	}
	// The kernel lock is gone: a writer in another process gets it, and a
	// shared lock here is refused, naming that writer.
	h, content := holdInHelper(t, path, "{pid};writer")
	var lockErr *LockError
	if _, err := NewShared(path); !errors.As(err, &lockErr) || lockErr.Shared || lockErr.Holder != content {
		t.Fatalf("NewShared while another process holds the lock = %v, want refused by %q", err, content)
	}
	h.finish(t)
	// Free again: a shared lock here is a kernel lock that excludes the
	// writer of another process.
	second, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process beside the new shared lock reported %q, want shared", verb)
	}
	if err := first.Close(); !errors.Is(err, errLockLost) {
		t.Fatalf("Close of a shared holder whose lock was dropped = %v, want errLockLost", err)
	}
	// The lost holder's release neither unlocked nor closed the new lock.
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process after the lost holder's Close reported %q, want shared", verb)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	assertFree(t, path)
}

// kernelWaits counts the F_SETLKW calls this process has in flight.
func kernelWaits() int {
	locks.Lock()
	defer locks.Unlock()
	return len(locks.waits)
}

// An exclusive wait blocked in the kernel behind another process's shared
// holder does not keep this process from sharing the lock meanwhile. When
// the kernel grants the wait, which makes the process's lock exclusive,
// the lock becomes shared again at once: other processes can share it,
// and the exclusive caller goes on waiting for this process's shared
// holder, and gets the lock when it lets go.
func TestExclusiveWaitGrantedBesideSharedHolderHere(t *testing.T) {
	path := tempLockPath(t)
	peer := startHelper(t, "shared", path)
	peer.expect(t, "locked")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := acquireInBackground(ctx, path)
	waitUntil(t, "the exclusive wait to block in the kernel", func() bool { return kernelWaits() == 1 })
	s, err := NewShared(path)
	if err != nil {
		t.Fatalf("NewShared beside another process's shared lock and a wait here: %v", err)
	}
	peer.finish(t)
	waitUntil(t, "the kernel to grant the wait", func() bool { return kernelWaits() == 0 })
	select {
	case r := <-got:
		t.Fatalf("Acquire returned while a shared holder of this process held the lock: %v", r.err)
	default:
	}
	other := startHelper(t, "shared", path)
	if verb, rest := other.next(t); verb != "locked" {
		t.Fatalf("NewShared in another process once the wait here was granted: %s %s, want locked", verb, rest)
	}
	other.finish(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if verb, _ := tryInHelper(t, path); verb != "locked" {
		t.Fatalf("New in another process while Acquire holds the lock: %q, want locked", verb)
	}
	r.lock.Close()
	assertFree(t, path)
}

// Two processes that each hold one lock and wait for the other's seem
// deadlocked to the kernel, whose F_SETLKW then fails with EDEADLK; but
// here the lock this process holds is not held by the goroutine that
// waits, and it is let go meanwhile. The wait is not given up for that:
// the other process gets the lock once it is released. This process lets
// go only once the other reports that the kernel refused its wait.
func TestWaitsThatCrossAreNotADeadlock(t *testing.T) {
	dir := testDir(t)
	mine, theirs := filepath.Join(dir, "mine"), filepath.Join(dir, "theirs")
	l, err := NewSimple(mine)
	if err != nil {
		t.Fatal(err)
	}
	peer := startCrossWait(t, theirs, mine)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := acquireInBackground(ctx, theirs)
	waitUntil(t, "the wait here to block in the kernel", func() bool { return kernelWaits() == 1 })
	if _, err := io.WriteString(peer.stdin, "wait\n"); err != nil {
		t.Fatal(err)
	}
	// The peer's wait meets this process's: the kernel refuses it.
	if verb, rest := peer.next(t); verb != "deadlock" {
		t.Fatalf("the other process's wait for a lock this process held while waiting: %s %s, "+
			"want deadlock", verb, rest)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if verb, rest := peer.next(t); verb != "got" {
		t.Fatalf("the other process's wait for a lock this process held while waiting: %s %s, "+
			"want got", verb, rest)
	}
	peer.finish(t)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lock.Close()
}

// startCrossWait starts the helper of runCrossWait, holding held, and
// returns it once it holds the lock.
func startCrossWait(t *testing.T, held, wanted string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), crossWaitEnv+"="+held+" "+wanted)
	peer := startProcess(t, cmd)
	peer.expect(t, "holding")
	return peer
}

// A wait that the kernel refuses with EDEADLK tries again, backing off:
// one with no context, which would block in flock(2), must not make a
// kernel call every millisecond while the cycle lasts. The cycle here:
// another process holds theirs and is blocked in the kernel waiting for
// mine, which this process holds while it waits for theirs. The bound
// allows a pause that doubles from 1 ms to 100 ms, with room to spare; a
// pause of 1 ms made 448 calls in the 500 ms, against a bound of 20.
func TestDeadlockRetriesBackOff(t *testing.T) {
	dir := testDir(t)
	mine, theirs := filepath.Join(dir, "mine"), filepath.Join(dir, "theirs")
	l, err := NewSimple(mine)
	if err != nil {
		t.Fatal(err)
	}
	peer := startCrossWait(t, theirs, mine)
	if _, err := io.WriteString(peer.stdin, "wait\n"); err != nil {
		t.Fatal(err)
	}
	if verb, rest := peer.next(t); verb != "blocked" {
		t.Fatalf("the other process's wait for the lock this process holds: %s %s, want blocked",
			verb, rest)
	}
	before, start := locks.retries.Load(), time.Now()
	got := acquireInBackground(context.Background(), theirs)
	time.Sleep(500 * time.Millisecond) // the cycle lasts until mine is let go
	retries, elapsed := locks.retries.Load()-before, time.Since(start)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if verb, rest := peer.next(t); verb != "got" {
		t.Fatalf("the other process's wait once this process let go: %s %s, want got", verb, rest)
	}
	peer.finish(t)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lock.Close()
	t.Logf("%d retries after EDEADLK in %v", retries, elapsed)
	if retries == 0 {
		t.Fatal("the kernel never refused the wait with EDEADLK: the test tested nothing")
	}
	if limit := 10 + int64(elapsed/(50*time.Millisecond)); retries > limit {
		t.Fatalf("%d retries after EDEADLK in %v; a wait that backs off makes at most %d",
			retries, elapsed, limit)
	}
}

// A descriptor that detach marked after its wait ended with an error is
// closed by its caller; the mark must go with it, or the next wait on a
// descriptor of the same number gives up at once.
func TestDetachMarkGoesWithTheDescriptor(t *testing.T) {
	dir := testDir(t)
	f, err := openFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	if !f.detach() {
		t.Fatal("detach of a descriptor with no wait and no lock refused")
	}
	fd := f.fd
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	g, err := openFile(filepath.Join(dir, "b"), os.O_RDWR|os.O_CREATE, 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.fd != fd {
		g.close()
		t.Fatalf("the next open got descriptor %d, not %d, which was just closed", g.fd, fd)
	}
	if err := g.waitLock(exclusive); err != nil {
		g.close()
		t.Fatalf("waitLock on a free file, through a descriptor number that a closed one had: %v", err)
	}
	if _, err := g.unlockAndClose(); err != nil {
		t.Fatal(err)
	}
}

// A wait that detach gave up behind a lock this process holds stays until
// that lock goes, holding nothing: its descriptor, closed sooner, would
// only be held back until the release. It then gives up, and the file is
// free: the wait did not join the shared lock it found.
func TestDetachedWaitStaysBehindOwnLockAndTakesNothing(t *testing.T) {
	path := tempLockPath(t)
	s, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openFile(path, os.O_RDONLY, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if !f.detach() {
		t.Fatal("detach of a descriptor with no wait and no lock refused")
	}
	done := make(chan error, 1)
	go func() { done <- f.waitLock(shared) }()
	waitUntil(t, "the wait to wait on the table, or return", func() bool {
		locks.Lock()
		defer locks.Unlock()
		return locks.changed != nil || len(done) > 0
	})
	select {
	case err := <-done:
		t.Fatalf("a detached wait behind a shared lock of this process returned %v while held", err)
	default:
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errDetached) {
		t.Fatalf("the detached wait once the lock went: %v, want errDetached", err)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	assertFree(t, path)
}

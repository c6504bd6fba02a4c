//go:build linux && !lockfile_fcntl

package lockfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of what holds for flock(2) locks on Linux, and is compared with
// util-linux flock(1) itself.

// NewSimple locks a named pipe at once: opened for reading and writing, it
// waits for no peer. NewSimple's doc compares the peers, checked here too:
// flock(1) opens it for reading only and so waits in open(2) for a writer,
// and zc.lockfile fails on it as not seekable.
func TestNamedPipe(t *testing.T) {
	path := fifo(t, testDir(t))
	err := withinTime(t, "NewSimple on a named pipe", func() error {
		l, err := NewSimple(path)
		if err != nil {
			return err
		}
		defer l.Close()
		if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
			t.Errorf("a second NewSimple on the named pipe: %v, want ErrLocked", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("NewSimple on a named pipe: %v", err)
	}

	const zcTry = "import sys, zc.lockfile\ntry:\n    zc.lockfile.SimpleLockFile(sys.argv[1])\n    print('locked')\nexcept Exception as e:\n    print(type(e).__name__)\n"
	out, err := exec.Command(zcPython(t), "-c", zcTry, path).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "UnsupportedOperation" {
		t.Errorf("zc.lockfile on a named pipe: %q, %v; want UnsupportedOperation", got, err)
	}

	flock := exec.Command(flockCommand(t), path, "true")
	if err := flock.Start(); err != nil {
		t.Fatal(err)
	}
	// Blocked in its open of the pipe: the dynamic loader's opens, which
	// come first, do not ask for O_CREAT.
	waitUntil(t, "flock(1) to wait in open(2)", func() bool {
		syscall, err := os.ReadFile("/proc/" + strconv.Itoa(flock.Process.Pid) + "/syscall")
		fields := strings.Fields(string(syscall))
		if err != nil || len(fields) < 4 || fields[0] != strconv.Itoa(unix.SYS_OPENAT) {
			return false
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(fields[3], "0x"), 16, 64)
		return err == nil && flags&unix.O_CREAT != 0
	})
	// A writer exists only once this open succeeds, which needs flock(1)'s
	// reader; then its open returns and it locks and exits.
	w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening the named pipe for writing beside flock(1): %v", err)
	}
	defer w.Close()
	if err := flock.Wait(); err != nil {
		t.Fatalf("flock(1) once a writer came: %v", err)
	}
}

// A wait that every caller gave up must not keep the lock once the holder
// lets go, even when its process never runs the waiter again: the helper
// gives up and then keeps its only P busy, with preemption off. Without
// the detached descriptor, the lock it takes on release would stay held
// for as long as the helper spins, and the retries below would fail.
func TestAbandonedWaitDoesNotKeepLockWhileProcessIsBusy(t *testing.T) {
	path := tempLockPath(t)
	holder, err := NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=abandon-and-spin", helperArgsEnv+"="+path,
		"GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1")
	h := startProcess(t, cmd)
	// The helper's thread in flock, once there is one, and what it is
	// doing: a system call's number, or "running".
	var waiterSyscall string
	syscallOf := func(task string) string {
		data, _ := os.ReadFile(task)
		nr, _, _ := strings.Cut(string(data), " ")
		return strings.TrimSpace(nr)
	}
	flock := strconv.Itoa(unix.SYS_FLOCK)
	waitUntil(t, "the helper's waiter to block in flock", func() bool {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/*/syscall")
		for _, task := range tasks {
			if syscallOf(task) == flock {
				waiterSyscall = task
				return true
			}
		}
		return false
	})
	if _, err := io.WriteString(h.stdin, "give up\n"); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "gave-up")
	// The helper must spin before the lock is let go: a waiter whose call
	// returns while the helper is still in the write(2) of its report
	// takes the P that write left and runs. Time the process spends in
	// user mode from now, five clock ticks of it, can only be the spin.
	userTime := func() int {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		ticks, err := strconv.Atoi(fields[11]) // utime, the 14th field
		if err != nil {
			t.Fatal(err)
		}
		return ticks
	}
	spinFrom := userTime()
	waitUntil(t, "the helper to spin", func() bool { return userTime() >= spinFrom+5 })
	holder.Close()
	// Let the helper's call take the lock, return, and its thread park
	// for want of a P, before anyone here tries: a try made earlier could
	// beat it to the lock, and prove nothing.
	waitUntil(t, "the helper's waiter to return from flock and park", func() bool {
		nr := syscallOf(waiterSyscall)
		return nr != flock && nr != "running" && nr != ""
	})
	refused := 0
	for deadline := time.Now().Add(10 * time.Second); ; refused++ {
		l, err := NewSimple(path)
		if err == nil {
			l.Close()
			break
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock is still held 10 s after its holder let go, by a wait its caller gave up (%d attempts refused)", refused)
		}
	}
	t.Logf("%d attempts refused after the holder let go", refused)
}

// Acquire makes the file hold its content and nothing else even when the
// holder wrote a longer content while Acquire waited: what it knows of the
// file's size is learnt after the wait.
func TestAcquireFileGrewWhileWaiting(t *testing.T) {
	for _, deadline := range []bool{true, false} {
		t.Run("deadline="+strconv.FormatBool(deadline), func(t *testing.T) {
			path := tempLockPath(t)
			holder, err := NewSimple(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Minute)
				defer cancel()
			}
			blockedBefore := threadsBlockedInLock(t)
			result := acquireInBackground(ctx, path)
			waitUntil(t, "Acquire to block in flock", func() bool { return threadsBlockedInLock(t) > blockedBefore })
			writeFile(t, path, " the holder wrote a long line while Acquire waited\n")
			holder.Close()
			r := <-result
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.lock.Close()
			if got, want := readFile(t, path), " "+strconv.Itoa(os.Getpid())+"\n"; got != want {
				t.Fatalf("file holds %q, want %q", got, want)
			}
		})
	}
}

//go:build unix

package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A process that lockfile run execs inherits the lock's descriptor, and
// the variables that name it. These tests stand in for run: a helper takes
// the lock as run does, clears close-on-exec on its descriptor and execs
// the test binary again with the variables set.

// inheritEnv selects a helper of this file. Its helpers run from init,
// before TestMain, so that the package is used first by the helper itself.
const inheritEnv = "LOCKFILE_TEST_INHERIT"

func init() {
	mode, arg, _ := strings.Cut(os.Getenv(inheritEnv), ":")
	if mode == "" {
		return
	}
	path := os.Getenv(helperArgsEnv)
	switch mode {
	case "run": // arg: x or s, the lock to take, and >MODE for COMMAND if not inherited
		lock, command, ok := strings.Cut(arg, ">")
		if !ok {
			command = "inherited"
		}
		os.Exit(runAndExec(path, lock == "s", command))
	case "inherited": // arg: x or s
		os.Exit(runInherited(path, arg == "s"))
	case "ignored": // arg: why the variables are to be ignored
		os.Exit(runIgnored(path, arg))
	case "peer":
		os.Exit(runPeer(path))
	case "abandon":
		os.Exit(runAbandon(path))
	}
	fmt.Println("error unknown inherit helper", mode)
	os.Exit(2)
}

// runAndExec takes the lock on path as lockfile run does and execs the
// test binary in its place, as the helper named by command.
func runAndExec(path string, shared bool, command string) int {
	var (
		l   interface{ Fd() uintptr }
		err error
	)
	if shared {
		l, err = NewShared(path)
	} else {
		l, err = New(path, WithContentTemplate("{pid};run"))
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fd := l.Fd()
	if _, err := unix.FcntlInt(fd, unix.F_SETFD, 0); err != nil {
		fmt.Println("error", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	mode := map[bool]string{false: "x", true: "s"}[shared]
	env := slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, inheritEnv+"=") })
	env = append(env, inheritEnv+"="+command+":"+mode,
		"LOCKFILE_FD="+strconv.Itoa(int(fd)), "LOCKFILE_PATH="+path, "LOCKFILE_PID="+strconv.Itoa(os.Getpid()))
	err = syscall.Exec(exe, []string{exe}, env)
	fmt.Println("error exec:", err)
	return 1
}

// runInherited is COMMAND: once told, it asks about its own lock in every
// way a program might, reporting each answer, and then holds the lock
// until its stdin closes.
func runInherited(path string, shared bool) int {
	report := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	in := bufio.NewScanner(os.Stdin)
	report("started")
	in.Scan()
	st, err := Inspect(path)
	report("holder %t %t %q %v", st.Held, st.Shared, st.Holder, err)
	attempt := func(name string, l io.Closer, err error) {
		var lockErr *LockError
		switch {
		case err == nil:
			report("%s ok %v", name, l.Close())
		case errors.As(err, &lockErr) && errors.Is(err, ErrLocked):
			report("%s refused %t %q", name, lockErr.Shared, lockErr.Holder)
		default:
			report("%s error %v", name, err)
		}
	}
	l, err := NewSimple(path)
	attempt("NewSimple", l, err)
	lf, err := New(path)
	attempt("New", lf, err)
	s, err := NewShared(path, WithOnLock(func(*os.File) error { return nil }))
	attempt("NewShared", s, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	l, err = AcquireSimple(ctx, path)
	cancel()
	attempt("AcquireSimple", l, err)
	st, err = Inspect(path)
	report("holder %t %t %q %v", st.Held, st.Shared, st.Holder, err)
	report("done")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// runAbandon is COMMAND giving up waits for its own lock: rounds of an
// AcquireSimple with a short deadline, each followed by a lock and release
// of another file, which wakes waits on the table. It reports its open
// descriptors after the first round and after 50 more, and then holds the
// lock until its stdin closes.
func runAbandon(path string) int {
	round := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		l, err := AcquireSimple(ctx, path)
		cancel()
		if err == nil {
			l.Close()
			return errors.New("AcquireSimple took the lock that COMMAND holds")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		other, err := NewSimple(path + ".other")
		if err != nil {
			return err
		}
		return other.Close()
	}
	var before int
	for i := range 51 {
		if err := round(); err != nil {
			fmt.Println("error", err)
			return 1
		}
		if i == 0 {
			before = descriptorsOpen()
		}
	}
	fmt.Println("descriptors", before, descriptorsOpen())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// descriptorsOpen counts the open descriptors below 4096, asking each one.
func descriptorsOpen() int {
	n := 0
	for fd := range 4096 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			n++
		}
	}
	return n
}

// runPeer tries the lock from another process without a pause until its
// stdin closes, and reports how often it got it.
func runPeer(path string) int {
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	fmt.Println("started")
	tries, taken := 0, 0
	for {
		select {
		case <-stop:
			fmt.Println("taken", taken, tries)
			return 0
		default:
		}
		tries++
		if l, err := NewSimple(path); err == nil {
			taken++
			l.Close()
		}
	}
}

// runIgnored sets the variables as they must not be believed, and reports
// whether NewSimple takes the free lock on path. The descriptor 3 is one
// the test passed in.
func runIgnored(path, why string) int {
	fd, pid := "3", strconv.Itoa(os.Getpid())
	switch why {
	case "other-pid": // a child that COMMAND started
		pid = strconv.Itoa(os.Getppid())
	case "closed-fd":
		fd = "100"
	case "other-file", "believed": // 3 is another file, or the lock file
	}
	os.Setenv("LOCKFILE_FD", fd)
	os.Setenv("LOCKFILE_PATH", path)
	os.Setenv("LOCKFILE_PID", pid)
	l, err := NewSimple(path)
	if err != nil {
		fmt.Println("refused", err)
		return 0
	}
	fmt.Println("ok")
	l.Close()
	return 0
}

func startInheritHelper(t *testing.T, mode, path string, extra ...*os.File) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), inheritEnv+"="+mode, helperArgsEnv+"="+path)
	cmd.ExtraFiles = extra
	return startProcess(t, cmd)
}

// A COMMAND that inherited the lock sees it as held, by itself: Holder says
// so and names it, its own lock calls are refused (a shared one joins a
// shared lock), and none of them lets the lock go. A peer process trying
// without a pause all the while never gets it: it would, were the lock
// dropped for an instant.
func TestInheritedLockIsHeldForCommandsWholeLife(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "exclusive", true: "shared"}[shared], func(t *testing.T) {
			path := tempLockPath(t)
			child := startInheritHelper(t, "run:"+map[bool]string{false: "x", true: "s"}[shared], path)
			child.expect(t, "started")
			content := strconv.Itoa(child.cmd.Process.Pid) + ";run"
			peer := startInheritHelper(t, "peer", path)
			peer.expect(t, "started")
			if _, err := io.WriteString(child.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			holder := fmt.Sprintf("holder true false %q <nil>", content)
			refused := fmt.Sprintf("refused false %q", content)
			want := []string{holder, "NewSimple " + refused, "New " + refused, "NewShared " + refused,
				"AcquireSimple " + refused, holder, "done"}
			if shared {
				holder = `holder true true "" <nil>`
				want = []string{holder, `NewSimple refused true ""`, `New refused true ""`,
					"NewShared ok <nil>", `AcquireSimple refused true ""`, holder, "done"}
			}
			for _, w := range want {
				verb, rest := child.next(t)
				if got := strings.TrimSpace(verb + " " + rest); got != w {
					t.Errorf("COMMAND reported %q, want %q", got, w)
				}
			}
			wantPeer := map[bool]string{false: "locked", true: "shared"}[shared]
			if verb, _ := tryInHelper(t, path); verb != wantPeer {
				t.Errorf("New in another process while COMMAND runs: %q, want %s", verb, wantPeer)
			}
			peer.stdin.Close()
			taken := peer.expect(t, "taken")
			t.Logf("the peer took the lock %s times while COMMAND held it", taken)
			if !strings.HasPrefix(taken, "0 ") {
				t.Errorf("a peer process took the lock %s times while COMMAND held it", taken)
			}
			child.finish(t)
			assertFree(t, path)
		})
	}
}

// Waits that COMMAND gives up on its own inherited lock open a descriptor
// of the locked file each. None may be closed while the lock is held, as
// closing any descriptor of a file drops the process's record lock on it,
// so they must not pile up: 50 waits given up, each followed by a lock and
// release of another file, leave no more descriptors open than one did,
// and the lock is still held.
func TestAbandonedWaitsOnInheritedLockLeaveNoDescriptors(t *testing.T) {
	path := tempLockPath(t)
	child := startInheritHelper(t, "run:x>abandon", path)
	var before, after int
	if _, err := fmt.Sscan(child.expect(t, "descriptors"), &before, &after); err != nil {
		t.Fatal(err)
	}
	t.Logf("COMMAND had %d descriptors open after one wait given up, %d after 51", before, after)
	if after > before {
		t.Errorf("50 waits given up on the inherited lock left %d more descriptors open", after-before)
	}
	if verb, _ := tryInHelper(t, path); verb != "locked" {
		t.Errorf("New in another process after COMMAND gave up its waits: %q, want locked", verb)
	}
	child.finish(t)
	assertFree(t, path)
}

// The variables are believed only by the process they name, and only for
// a descriptor open on the file at the path: a child of COMMAND inherits
// the variables and holds no lock, and a descriptor that is closed, or
// another file's, names no lock. Each helper gets a free lock, which it
// takes unless it believes the variables.
func TestInheritedVariablesIgnoredUnlessTheyHold(t *testing.T) {
	dir := testDir(t)
	path := tempLockPath(t)
	writeFile(t, path, "")
	other := dir + "/other"
	writeFile(t, other, "")
	for _, tt := range []struct {
		why  string
		file string
		want string
	}{
		// The control: record locks read the variables; flock(2) keeps
		// them apart without them.
		{"believed", path, map[bool]string{true: "refused", false: "ok"}[recordLocks]},
		{"other-pid", path, "ok"},
		{"closed-fd", "", "ok"},
		{"other-file", other, "ok"},
	} {
		var extra []*os.File
		if tt.file != "" {
			f, err := os.OpenFile(tt.file, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			extra = append(extra, f)
		}
		h := startInheritHelper(t, "ignored:"+tt.why, path, extra...)
		if verb, rest := h.next(t); verb != tt.want {
			t.Errorf("NewSimple with the variables %s: %s %s, want %s", tt.why, verb, rest, tt.want)
		}
		h.finish(t)
	}
}

package lockfile

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Holders that loop taking the lock, writing a long content and releasing
// it are killed with SIGKILL at random moments. A third of them is killed
// while running, which can cut a write short; a third is stopped first at a
// random moment and killed while stopped; and a third is stopped again and
// again until it stops between writing its content and truncating the file
// to it, that is while holding the lock with its content write unfinished,
// and is killed there. After every kill the lock must be free at once, the
// file's first line must name the dead holder and no one else, and the next
// holder (the next helper, which checks itself) must find exactly its own
// content in the file.
func TestCrashStorm(t *testing.T) {
	const kills = 240
	// The second content is shorter: written over the first, it leaves the
	// first's tail until the truncation, which shows a kill in between.
	const long, short = 256 << 10, 256<<10 - 16<<10
	path := tempLockPath(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	torn, inWindow, stops := 0, 0, 0
	for i := range kills {
		h := startHelper(t, "crash-cycle", path, strconv.Itoa(long), strconv.Itoa(short))
		h.expect(t, "holding")
		pid := h.cmd.Process.Pid
		randomMoment := func() { time.Sleep(time.Duration(rng.Int64N(int64(time.Millisecond)))) }
		switch i % 3 {
		case 0:
			randomMoment()
		case 1:
			randomMoment()
			stopProcess(t, pid)
		case 2:
			for attempt := 0; ; attempt++ {
				randomMoment()
				stopProcess(t, pid)
				stops++
				if betweenWriteAndTruncate(t, path, long, short) {
					inWindow++
					break
				}
				if attempt == 1000 {
					t.Fatalf("kill %d: the holder never stopped between its write and its truncation", i)
				}
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.kill(t)
		if st, err := Inspect(path); err != nil || st.Held {
			t.Fatalf("kill %d (seed %d): Holder = %+v, %v right after the holder died; want free", i, seed, st, err)
		}
		content := readFile(t, path)
		if got := holderFrom([]byte(content)[1:]); got != strconv.Itoa(pid) {
			t.Fatalf("kill %d (seed %d): the file names %q, want the dead holder %d", i, seed, got, pid)
		}
		if !isWholeCrashContent(content, strconv.Itoa(pid), long, short) {
			torn++
		}
		assertFree(t, path)
	}
	t.Logf("%d holders killed (seed %d): %d left a torn file, %d of them killed between writing and truncating (found in %d stops)",
		kills, seed, torn, inWindow, stops)
	if inWindow != kills/3 || torn < inWindow {
		t.Fatalf("%d kills between writing and truncating, %d torn files; want %d and at least as many", inWindow, torn, kills/3)
	}
}

func isWholeCrashContent(content, pid string, long, short int) bool {
	for _, tmpl := range []string{crashTemplate('a', long), crashTemplate('b', short)} {
		if content == " "+strings.Replace(tmpl, "{pid}", pid, 1)+"\n" {
			return true
		}
	}
	return false
}

// stopProcess sends SIGSTOP and returns once the process has stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	waitUntil(t, "the holder to stop", func() bool {
		data, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name, which is in parentheses.
		_, fields, _ := strings.Cut(string(data), ") ")
		return strings.HasPrefix(fields, "T")
	})
}

// betweenWriteAndTruncate reports whether the file holds the short content
// written over the long one and not yet cut to length: a holder stopped now
// holds the lock with its content write unfinished.
func betweenWriteAndTruncate(t *testing.T, path string, long, short int) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Only the ends are read: the file is a quarter megabyte, and this is
	// looked at again and again.
	head := make([]byte, 32)
	n, _ := f.ReadAt(head, 0)
	firstLine, rest, _ := strings.Cut(string(head[:n]), "\n")
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tail := make([]byte, 2)
	if _, err := f.ReadAt(tail, info.Size()-2); err != nil {
		return false
	}
	return info.Size() == int64(len(firstLine)+1+long+1) && strings.HasPrefix(rest, "b") && string(tail) == "a\n"
}

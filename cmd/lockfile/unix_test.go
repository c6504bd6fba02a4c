//go:build unix

package main

import (
	"github.com/golockfile/lockfile"

	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The commands the tests start, shells above all, begin with the signal
// dispositions of a terminal's foreground job, whatever this test ran
// under: SIGINT and SIGHUP, if ignored here, are caught, and so at their
// default in a child; a child cannot dump core.
func init() {
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if signal.Ignored(sig) {
			signal.Notify(make(chan os.Signal, 1), sig)
		}
	}
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
}

// recordLocks tells that the locks are POSIX record locks (see
// fcntl_test.go), not flock(2)'s.
var recordLocks bool

// ciEnv is set by .ci/run: a test that would skip for want of flock(1)
// fails instead.
const ciEnv = "LOCKFILE_CI"

func needProgram(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(ciEnv) != "" {
			t.Fatalf("%s is missing (and %s is set, so this cannot be skipped)", name, ciEnv)
		}
		t.Skip(name + " is missing")
	}
}

// expect fails unless the next line on stdout is want.
func (p *proc) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%v: stdout ended, want %q", p.cmd.Args, want)
		}
		p.stdout.WriteString(line + "\n")
		if line != want {
			t.Fatalf("%v printed %q, want %q", p.cmd.Args, line, want)
		}
	case <-time.After(patience):
		t.Fatalf("%v printed nothing in %v, want %q", p.cmd.Args, patience, want)
	}
}

// lockfile becomes COMMAND: the same process, with lockfile's stdin,
// environment and lock, and COMMAND's exit status.
func TestRunExecsCommand(t *testing.T) {
	path := lockPath(t)
	cmd := exec.Command(binary, "run", path, "sh", "-c",
		`cat "$0"; echo "pid $$"; read line; echo "$line $FOO"; exit 3`, path)
	cmd.Env = append(os.Environ(), "FOO=from-env")
	p := start(t, cmd)
	fmt.Fprintln(p.stdin, "from-stdin")
	r := p.wait(t)
	r.check(t, 3, fmt.Sprintf(" %d\npid %d\nfrom-stdin from-env\n", r.pid, r.pid), "")
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

func TestRunWritesTemplate(t *testing.T) {
	path := lockPath(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r := runLockfile(t, "run", "-t", "{pid};{hostname};{{cron}}", path, "--", "cat", path)
	r.check(t, 0, fmt.Sprintf(" %d;%s;{cron}\n", r.pid, host), "")
}

func TestRunRefusesHeldLock(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "holder-1")
	marker := filepath.Join(filepath.Dir(path), "ran")
	for _, tc := range []struct {
		flags []string
		code  int
	}{{nil, 1}, {[]string{"-E", "75"}, 75}, {[]string{"-E", "0"}, 0}} {
		args := append(append([]string{"run"}, tc.flags...), path, "--", "touch", marker)
		runLockfile(t, args...).check(t, tc.code, "", "lockfile: "+path+" is held by holder-1\n")
	}
	assertMissing(t, marker)
	if data, err := os.ReadFile(path); err != nil || string(data) != " holder-1\n" {
		t.Fatalf("a refused run changed the lock file: %q, %v", data, err)
	}
}

func TestRunFailsWhenPathCannotBeOpened(t *testing.T) {
	path := filepath.Join(testDir(t), "no-such-dir", "test.lock")
	runLockfile(t, "run", path, "--", "true").
		check(t, 125, "", "lockfile: open "+path+": no such file or directory\n")
}

func TestRunWaits(t *testing.T) {
	// flock(1)'s bare seconds, a Go duration, and no limit.
	for _, wait := range []string{"20", "20s", "inf"} {
		t.Run(wait, func(t *testing.T) {
			path := lockPath(t)
			l := hold(t, path, "holder-1")
			p := startLockfile(t, "run", "-w", wait, path, "cat", path)
			time.Sleep(300 * time.Millisecond)
			select {
			case line := <-p.lines:
				t.Fatalf("COMMAND ran while the lock was held: %q", line)
			default:
			}
			l.Close()
			r := p.wait(t)
			r.check(t, 0, fmt.Sprintf(" %d\n", r.pid), "")
		})
	}
}

func TestRunWaitTimesOut(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "holder-1")
	for _, wait := range []string{"300ms", ".3"} {
		began := time.Now()
		runLockfile(t, "run", "-w", wait, "-E", "3", path, "true").
			check(t, 3, "", "lockfile: "+path+" is still held after 300ms by holder-1\n")
		if waited := time.Since(began); waited < 300*time.Millisecond {
			t.Fatalf("-w %s gave up after %v", wait, waited)
		}
	}
}

// stderrHas waits until p has written want on stderr.
func (p *proc) stderrHas(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(patience); !strings.Contains(p.stderr.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("%v did not say %q on stderr in %v; it said %q",
				p.cmd.Args, want, patience, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVerboseSaysWhomItWaitsForAndHowLong(t *testing.T) {
	path := lockPath(t)
	l := hold(t, path, "holder-1")
	p := startLockfile(t, "run", "-v", "-w", "20", path, "true")
	p.stderrHas(t, "lockfile: "+path+" is held by holder-1; waiting up to 20s\n")
	time.Sleep(300 * time.Millisecond)
	l.Close()
	r := p.wait(t)
	locked := `lockfile: locked ` + regexp.QuoteMeta(path) + ` after `
	took := regexp.MustCompile(`\n` + locked + `(\S+)\n$`).FindStringSubmatch(r.stderr)
	if r.code != 0 || took == nil {
		t.Fatalf("status %d, stderr %q; want it to say how long it waited", r.code, r.stderr)
	}
	if waited, err := time.ParseDuration(took[1]); err != nil || waited < 300*time.Millisecond {
		t.Fatalf("it says it waited %s, less than the lock was held", took[1])
	}
	// Without a wait, it says it took the lock.
	r = runLockfile(t, "run", "-v", path, "true")
	if r.code != 0 || !regexp.MustCompile(`^`+locked+`[0-9.]+m?s\n$`).MatchString(r.stderr) {
		t.Fatalf("status %d, stderr %q", r.code, r.stderr)
	}
}

func TestRunCommandThatCannotRun(t *testing.T) {
	dir := testDir(t)
	notExecutable := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExecutable, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		code    int
		stderr  string
	}{
		{"no-such-command-here", 127,
			"lockfile: no-such-command-here: executable file not found in $PATH\n"},
		{filepath.Join(dir, "missing"), 127, "no such file or directory"},
		{notExecutable, 126, "permission denied"},
		{dir, 126, "is a directory"},
	} {
		path := filepath.Join(dir, "test.lock")
		runLockfile(t, "run", path, "--", tc.command).check(t, tc.code, "", tc.stderr)
		// Found out before the lock is taken, so nothing is created.
		assertMissing(t, path)
	}

	// An executable that the kernel cannot run is found out only when it
	// is started, under the lock.
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02\x03"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := lockPath(t)
	runLockfile(t, "run", path, "--", garbage).check(t, 126, "", "exec format error")
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

// waitStatus is how p's process ended.
func (p *proc) waitStatus() syscall.WaitStatus {
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func (p *proc) killedBy(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if ws := p.waitStatus(); !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("%v ended with %v, want death by %v", p.cmd.Args, p.cmd.ProcessState, sig)
	}
}

// COMMAND's death by a signal is lockfile's, as a shell sees it.
func TestCommandKilledBySignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT} {
		path := lockPath(t)
		p := startLockfile(t, "run", path, "sh", "-c", "kill -s "+unix.SignalName(sig)[3:]+" $$")
		p.wait(t)
		p.killedBy(t, sig)
	}
}

// signalScript traps signal $1 and, when it comes, asks lockfile ($2)
// whether the lock on $3 is still held, before it exits.
const signalScript = `trap 'echo "got $1"; "$2" status "$3" >/dev/null; echo "status $?"; exit 7' \
  "$1"
echo ready
while :; do sleep 0.05; done`

// Every signal sent to lockfile reaches COMMAND, which holds the lock.
func TestSignalsReachCommand(t *testing.T) {
	for name, sig := range map[string]syscall.Signal{
		"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
		"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "ALRM": syscall.SIGALRM,
		"WINCH": syscall.SIGWINCH, "PIPE": syscall.SIGPIPE,
	} {
		t.Run(name, func(t *testing.T) {
			path := lockPath(t)
			p := startLockfile(t, "run", path, "sh", "-c", signalScript, "sh", name, binary, path)
			p.expect(t, "ready")
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// "status 1": the lock was still held while COMMAND
			// handled the signal.
			p.wait(t).check(t, 7, "ready\ngot "+name+"\nstatus 1\n", "")
			runLockfile(t, "status", path).check(t, 0, "free\n", "")
		})
	}
}

// A ^C at a terminal goes to the foreground process group. COMMAND gets
// it once, dies of it, and the script that ran lockfile stops, as it does
// without lockfile (bash goes on after a child that exits normally).
func TestCtrlCStopsTheScript(t *testing.T) {
	needProgram(t, "bash")
	path := lockPath(t)
	cmd := exec.Command("bash", "-c",
		`"$0" run "$1" sh -c 'echo ready; exec sleep 30'; echo "went on after $?"`, binary, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := start(t, cmd)
	p.expect(t, "ready")
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	if p.stdout.String() != "ready\n" {
		t.Fatalf("the script printed %q", p.stdout.String())
	}
	p.killedBy(t, syscall.SIGINT)
}

func TestCtrlCIsDeliveredOnce(t *testing.T) {
	path := lockPath(t)
	cmd := exec.Command(binary, "run", path, "sh", "-c", `n=0
trap 'n=$((n+1)); [ $n = 1 ] && echo got' INT
echo ready; until read line && [ "$line" = done ]; do :; done; echo "count $n"`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := start(t, cmd)
	p.expect(t, "ready")
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.expect(t, "got")
	time.Sleep(300 * time.Millisecond) // for a second delivery, if any, to arrive
	fmt.Fprintln(p.stdin, "done")
	p.wait(t).check(t, 0, "ready\ngot\ncount 1\n", "")
}

// untilScript waits until the file $0 exists, and says it went on.
const untilScript = `echo "ready $$"; until [ -e "$0" ]; do sleep 0.05; done; echo survived`

// readyPID reads the "ready PID" line of untilScript.
func (p *proc) readyPID(t *testing.T) int {
	t.Helper()
	select {
	case line := <-p.lines:
		p.stdout.WriteString(line + "\n")
		var pid int
		if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
			t.Fatalf("%v printed %q, want ready and a pid", p.cmd.Args, line)
		}
		return pid
	case <-time.After(patience):
		t.Fatalf("%v printed nothing in %v", p.cmd.Args, patience)
	}
	return 0
}

// signalThenStop sends sigs to untilScript's process pid, then creates
// its file stop. An ignored signal is discarded when sent; one that is not
// ends the script before it can see the file.
func signalThenStop(t *testing.T, pid int, stop string, sigs ...syscall.Signal) {
	t.Helper()
	for _, sig := range sigs {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A shell starts a background job with SIGINT and SIGQUIT ignored, and
// they stay ignored in COMMAND.
func TestBackgroundJobKeepsIntAndQuitIgnored(t *testing.T) {
	path := lockPath(t)
	stop := filepath.Join(filepath.Dir(path), "stop")
	p := start(t, exec.Command("sh", "-c", `"$0" run "$1" sh -c "$2" "$3" & wait $!; echo "status $?"`,
		binary, path, untilScript, stop))
	pid := p.readyPID(t)
	signalThenStop(t, pid, stop, syscall.SIGINT, syscall.SIGQUIT)
	p.wait(t).check(t, 0, fmt.Sprintf("ready %d\nsurvived\nstatus 0\n", pid), "")
}

func TestNohupKeepsHupIgnored(t *testing.T) {
	needProgram(t, "nohup")
	path := lockPath(t)
	stop := filepath.Join(filepath.Dir(path), "stop")
	p := start(t, exec.Command("nohup", binary, "run", path, "sh", "-c", untilScript, stop))
	pid := p.readyPID(t)
	signalThenStop(t, pid, stop, syscall.SIGHUP)
	p.wait(t).check(t, 0, fmt.Sprintf("ready %d\nsurvived\n", pid), "")
}

// A signal that would end COMMAND ends a lockfile that waits for the lock
// the same way, SIGQUIT without a stack dump, and COMMAND is not run.
func TestSignalWhileWaitingEndsLockfile(t *testing.T) {
	sigs := []syscall.Signal{
		syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGUSR1, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGSEGV, syscall.SIGSYS,
	}
	own := osCaughtSignals() // the system's own, such as SIGIO and the real-time ones on Linux
	sigs = append(sigs, own[0], own[len(own)-1])
	for _, sig := range sigs {
		// Half wait with a limit, half without.
		wait, limit := "20s", " up to 20s"
		if sig%2 == 0 {
			wait, limit = "inf", ""
		}
		t.Run(fmt.Sprintf("%d/%s", sig, wait), func(t *testing.T) {
			t.Parallel()
			path := lockPath(t)
			l := hold(t, path, "holder-1")
			marker := filepath.Join(filepath.Dir(path), "ran")
			p := startLockfile(t, "run", "-v", "-w", wait, path, "touch", marker)
			waiting := "lockfile: " + path + " is held by holder-1; waiting" + limit + "\n"
			p.stderrHas(t, waiting)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			p.wait(t).check(t, -1, "", waiting)
			if p.stderr.String() != waiting {
				t.Fatalf("stderr %q; want only %q", p.stderr.String(), waiting)
			}
			p.killedBy(t, sig)
			l.Close()
			assertMissing(t, marker)
		})
	}
}

// processAlive reports whether pid is running, and ends it at cleanup.
func processAlive(t *testing.T, pid int) bool {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return syscall.Kill(pid, 0) == nil
}

// As with flock(1), a process that COMMAND leaves running holds the lock
// until it exits; not where the locks are record locks, which belong to
// COMMAND's process alone.
func TestProcessesLeftByCommand(t *testing.T) {
	path := lockPath(t)
	r := runLockfile(t, "run", path, "sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!")
	var pid int
	if _, err := fmt.Sscan(r.stdout, &pid); err != nil || r.code != 0 {
		t.Fatalf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !processAlive(t, pid) {
		t.Fatal("the background process has gone already")
	}
	if recordLocks {
		runLockfile(t, "status", path).check(t, 0, "free\n", "")
		return
	}
	runLockfile(t, "status", path).check(t, 1, fmt.Sprintf("%d\n", r.pid), "")
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		if r := runLockfile(t, "status", path); r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock is still held after the background process was killed")
		}
	}
}

// overlapScript runs lockfile ($0) twice on the lock $1, logging into $2.
// The first COMMAND logs its start, and its end a second later, itself or,
// if $4 is "child", through a child it leaves; lockfile is sent signal $3
// as the first COMMAND starts. The second lockfile waits for the lock and
// logs its own start and end. The log is read once the first COMMAND
// would have ended, had it lived on (a child's end comes before the
// second's start, or the test fails anyway).
const overlapScript = `ulimit -c 0
lockfile=$0 lock=$1 log=$2
first='echo "start 1" >>"$0"; sleep 1; echo "end 1" >>"$0"'
if [ "$4" = child ]; then first="($first) & wait"; fi
"$lockfile" run "$lock" sh -c "$first" "$log" &
pid=$!
until grep -q "start 1" "$log" 2>/dev/null; do sleep 0.01; done
{ kill -s "$3" "$pid"; wait "$pid"; } 2>/dev/null # without bash's report of the death
echo "first: $?"
"$lockfile" run -w 20 "$lock" sh -c 'echo "start 2" >>"$0"; echo "end 2" >>"$0"' "$log"
echo "second: $?"
[ "$4" = child ] || sleep 1.5
cat "$log"`

// However lockfile is killed while COMMAND runs, a second run never runs
// its COMMAND beside the first one's: the signal ends COMMAND, and with
// flock(2) locks, the child it leaves keeps the lock until it ends.
func TestKilledRunNeverOverlapsTheNext(t *testing.T) {
	needProgram(t, "bash")
	for _, sig := range []syscall.Signal{
		syscall.SIGKILL, syscall.SIGABRT, syscall.SIGTRAP,
		syscall.SIGSYS, syscall.SIGSEGV, syscall.SIGTERM,
	} {
		for _, logger := range []string{"self", "child"} {
			if logger == "child" && recordLocks {
				continue // the child holds no lock; see TestProcessesLeftByCommand
			}
			t.Run(unix.SignalName(sig)+"/"+logger, func(t *testing.T) {
				t.Parallel()
				dir := testDir(t)
				lock, log := filepath.Join(dir, "test.lock"), filepath.Join(dir, "log")
				cmd := exec.Command("bash", "-c", overlapScript,
					binary, lock, log, unix.SignalName(sig)[3:], logger)
				cmd.Dir = dir
				first := "start 1\n"
				if logger == "child" {
					first += "end 1\n"
				}
				want := fmt.Sprintf("first: %d\nsecond: 0\n%sstart 2\nend 2\n", 128+sig, first)
				start(t, cmd).wait(t).check(t, 0, want, "")
			})
		}
	}
}

// run -s takes a shared lock: runs share it with each other and with
// shared locks of the library, an exclusive holder refuses them by name,
// and they refuse an exclusive run, saying it is held shared. status says
// so too. -t cannot go with -s.
func TestRunShared(t *testing.T) {
	path := lockPath(t)
	reader, err := lockfile.NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	// A shared run beside a shared holder runs; inside it, another shared
	// run runs, and an exclusive run is refused.
	runLockfile(t, "run", "-s", path, "sh", "-c",
		`"$0" run -s "$1" true && "$0" run "$1" true; echo "exclusive: $?"`, binary, path).
		check(t, 0, "exclusive: 1\n", "lockfile: "+path+" is held by shared holders\n")
	runLockfile(t, "status", path).check(t, 1, "\n", "is held by shared holders")
	reader.Close()

	hold(t, path, "writer-1")
	runLockfile(t, "run", "-s", path, "true").
		check(t, 1, "", "lockfile: "+path+" is held by writer-1\n")
	runLockfile(t, "run", "-s", "-t", "x", path, "true").check(t, 2, "", "-t with -s")
}

// A named pipe or a device is refused alike by status, run and run -s,
// and COMMAND does not run.
func TestNonRegularFilesAreRefused(t *testing.T) {
	dir := testDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	for _, path := range []string{fifo, os.DevNull} {
		want := "lockfile: open " + path + ": lock file is not a regular file\n"
		for _, args := range [][]string{
			{"status", path}, {"run", path, "touch", marker}, {"run", "-s", path, "touch", marker},
		} {
			if r := runLockfile(t, args...); r.code != 125 || r.stdout != "" || r.stderr != want {
				t.Errorf("lockfile %q: status %d, stdout %q, stderr %q; want 125 and %q",
					args, r.code, r.stdout, r.stderr, want)
			}
		}
	}
	assertMissing(t, marker)
}

// A path or a COMMAND whose name holds a newline, an escape or a byte that
// is not UTF-8 is quoted in every message that names it.
func TestMessagesQuoteUnprintableNames(t *testing.T) {
	dir := testDir(t)
	name := "a\nb\x1b[31m\xff"
	path := filepath.Join(dir, name+".lock")
	q := strconv.Quote(path)
	hold(t, path, "holder-1")
	runLockfile(t, "run", path, "true").check(t, 1, "", "lockfile: "+q+" is held by holder-1\n")
	runLockfile(t, "run", "-v", "-w", ".1", path, "true").check(t, 1, "",
		"lockfile: "+q+" is held by holder-1; waiting up to 100ms\n"+
			"lockfile: "+q+" is still held after 100ms")

	free := filepath.Join(dir, name+"-free.lock")
	r := runLockfile(t, "run", "-v", free, "true")
	if r.code != 0 || !strings.HasPrefix(r.stderr, "lockfile: locked "+strconv.Quote(free)+" after ") {
		t.Errorf("status %d, stderr %q", r.code, r.stderr)
	}

	missing := filepath.Join(dir, name, "x.lock")
	runLockfile(t, "run", missing, "true").check(t, 125, "",
		"lockfile: open "+strconv.Quote(missing)+": no such file or directory\n")
	sub := filepath.Join(dir, name+"-dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	runLockfile(t, "status", sub).check(t, 125, "",
		"lockfile: open "+strconv.Quote(sub)+": lock file is not a regular file\n"+
			"lockfile: "+strconv.Quote(sub)+" is a directory;")

	command := filepath.Join(dir, name+"-command")
	runLockfile(t, "run", free, command).check(t, 127, "",
		"lockfile: "+strconv.Quote(command)+": no such file or directory\n")
	runLockfile(t, "run", free, "-x\x1b").check(t, 2, "", `lockfile run: "-x\x1b" after PATH`)
}

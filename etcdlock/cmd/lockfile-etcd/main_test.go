//go:build unix

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The tests run lockfile as users do: TestMain builds cmd/lockfile of this
// checkout into a directory, and puts this test binary beside it under the
// name lockfile-etcd, as which it runs main. They run against an etcd
// server they start, the etcd named by $ETCD or the one on $PATH, as
// etcdlock's tests do; without one they skip, or fail when LOCKFILE_CI is
// set.
const ciEnv = "LOCKFILE_CI"

var (
	binDir      string // lockfile and lockfile-etcd
	lockfileBin string
	noEtcd      error
	server      *etcdServer
)

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case guardianName, etcdProgramName:
		main()
	}
	os.Exit(runTests(m))
}

const etcdProgramName = "lockfile-etcd"

func runTests(m *testing.M) int {
	// The commands the tests start begin with SIGINT and SIGHUP at their
	// default, whatever this test ran under.
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if signal.Ignored(sig) {
			signal.Notify(make(chan os.Signal, 1), sig)
		}
	}
	dir, err := os.MkdirTemp(tempRoot(), "lockfile-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = filepath.Join(dir, "bin")
	lockfileBin = filepath.Join(binDir, "lockfile")
	build := exec.Command("go", "build", "-o", lockfileBin,
		"github.com/golockfile/lockfile/cmd/lockfile")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lockfile:", err)
		return 1
	}
	self, err := os.Executable()
	if err == nil {
		err = os.Symlink(self, filepath.Join(binDir, etcdProgramName))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if server, noEtcd = startEtcd(dir, nil); server != nil {
		defer server.stop()
	}
	return m.Run()
}

// tempRoot puts etcd's data on a memory file system where there is one.
func tempRoot() string {
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// needEtcd skips a test when there is no etcd, unless CI asked for every
// test.
func needEtcd(t *testing.T) {
	t.Helper()
	if noEtcd == nil {
		return
	}
	if os.Getenv(ciEnv) != "" {
		t.Fatalf("no etcd: %v (and %s is set, so the test cannot be skipped)", noEtcd, ciEnv)
	}
	t.Skipf("no etcd: %v", noEtcd)
}

type etcdServer struct {
	addr    string // host:port, as --etcd takes it
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// startEtcd starts one etcd member on free loopback ports, with short
// election timeouts that allow leases of a second. With clientTLS, it
// serves clients over TLS, which extra sets up, and is reached with
// clientTLS.
func startEtcd(dir string, clientTLS *tls.Config, extra ...string) (*etcdServer, error) {
	binary := os.Getenv("ETCD")
	if binary == "" {
		binary = "etcd"
	}
	binary, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("%w; install etcd-server, or name an etcd binary in $ETCD", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &etcdServer{addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		logPath: filepath.Join(dir, "etcd.log"),
		exited:  make(chan struct{})}
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	scheme := "http://"
	if clientTLS != nil {
		scheme = "https://"
	}
	s.cmd = exec.Command(binary, append([]string{"--name", "lockfile-etcd-test",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", scheme + s.addr, "--advertise-client-urls", scheme + s.addr,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "lockfile-etcd-test=" + peer,
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn"}, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = etcdAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{scheme + s.addr}, TLS: clientTLS,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.stop()
		return nil, err
	}
	defer c.Close()
	for deadline := time.Now().Add(15 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "ready")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			data, _ := os.ReadFile(s.logPath)
			return nil, fmt.Errorf("etcd exited at start-up:\n%s", data)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("etcd not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts picks n loopback ports that are free now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *etcdServer) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

func newClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
}

// testKey returns a lock key of the test's own.
func testKey(t *testing.T) string {
	return fmt.Sprintf("/lockfile-etcd-test/%s-%d", t.Name(), time.Now().UnixNano())
}

// A result is how a run of lockfile ended.
type result struct {
	stdout, stderr string
	status         syscall.WaitStatus
}

func (r result) code() int { return r.status.ExitStatus() }

// lockfileCmd returns the command lockfile ARGS.
func lockfileCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(lockfileBin, args...)
	// lockfile-etcd is this test binary: built with the race detector, it
	// would sleep a second at exit unless told not to.
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// runLockfile runs lockfile to its end.
func runLockfile(t *testing.T, args ...string) result {
	t.Helper()
	cmd := lockfileCmd(args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)}
}

// A proc is a running lockfile whose stdout the test reads line by line.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan struct{} // closed once lockfile has been waited for
	stderr strings.Builder
	mu     sync.Mutex
}

func startLockfile(t *testing.T, args ...string) *proc {
	t.Helper()
	p, err := startProc(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startProc starts lockfile, and may be called from any goroutine.
func startProc(t *testing.T, args ...string) (*proc, error) {
	p := &proc{cmd: lockfileCmd(args...), lines: make(chan string, 100)}
	// A COMMAND that outlives lockfile, as in a failing test, may hold
	// stdout open.
	p.cmd.WaitDelay = time.Second
	// stdout is a pipe of the test's own, which it reads to the end
	// whenever lockfile exits: the pipe of StdoutPipe is closed by Wait.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout = w
	p.cmd.Stderr = &syncWriter{&p.mu, &p.stderr}
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	p.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		r.Close()
	})
	return p, nil
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// next returns the next line of stdout.
func (p *proc) next(t *testing.T, within time.Duration) string {
	t.Helper()
	line, err := p.nextLine(within)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// nextLine returns the next line of stdout, and may be called from any
// goroutine.
func (p *proc) nextLine(within time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%q: stdout ended; stderr: %s", p.cmd.Args, p.errors())
		}
		return line, nil
	case <-time.After(within):
		return "", fmt.Errorf("%q: no line on stdout after %v; stderr: %s",
			p.cmd.Args, within, p.errors())
	}
}

func (p *proc) errors() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// wait waits for lockfile to exit, for at most within.
func (p *proc) wait(t *testing.T, within time.Duration) syscall.WaitStatus {
	t.Helper()
	status, err := p.waitExit(within)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// waitExit waits for lockfile to exit, for at most within, and may be
// called from any goroutine.
func (p *proc) waitExit(within time.Duration) (syscall.WaitStatus, error) {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.Sys().(syscall.WaitStatus), nil
	case <-time.After(within):
		return 0, fmt.Errorf("%q still running after %v; stderr: %s", p.cmd.Args, within, p.errors())
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return unix.Kill(pid, 0) == nil
	}
	i := strings.LastIndexByte(string(data), ')')
	return i < 0 || len(data) < i+3 || data[i+2] != 'Z'
}

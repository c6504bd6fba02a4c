//go:build unix

package etcdlock

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The tests run against real etcd servers: the etcd named by $ETCD, or
// else the one on $PATH (Debian's etcd-server), started on loopback ports
// with data directories of their own and stopped afterwards. TestMain
// starts one server that most tests and the examples share; some tests
// start more. Without etcd every test that needs it reports SKIP, and the
// examples, which cannot skip, are not run. Multi-process tests re-execute
// the test binary with helperEnv set; such a child runs one helper and
// exits.
const (
	helperEnv     = "ETCDLOCK_TEST_HELPER"
	helperArgsEnv = "ETCDLOCK_TEST_HELPER_ARGS"
	// ciEnv is set by .ci/run: where the tests would be skipped for want
	// of etcd, they fail instead.
	ciEnv = "LOCKFILE_CI"
)

var (
	etcdBinary string // the etcd the tests run
	noEtcd     error  // why there is none
	shared     *etcdServer
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, strings.Split(os.Getenv(helperArgsEnv), "\n")))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	etcdBinary, noEtcd = findEtcd()
	if noEtcd != nil {
		flag.Parse()
		if os.Getenv(ciEnv) == "" {
			skip := "^Example"
			if s := flag.Lookup("test.skip").Value.String(); s != "" {
				skip = s + "|" + skip
			}
			flag.Set("test.skip", skip)
		}
		return m.Run()
	}
	dir, err := os.MkdirTemp(tempRoot(), "etcdlock-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	servers, err := startCluster(dir, "shared", 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shared = servers[0]
	defer shared.stop()
	// The examples find the server where etcdctl would.
	os.Setenv("ETCDCTL_ENDPOINTS", shared.clientURL)
	return m.Run()
}

// findEtcd returns the etcd named by $ETCD, or else the one on $PATH.
func findEtcd() (string, error) {
	if b := os.Getenv("ETCD"); b != "" {
		if _, err := exec.LookPath(b); err != nil {
			return "", fmt.Errorf("$ETCD: %w", err)
		}
		return b, nil
	}
	b, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("%w; install etcd-server, or name an etcd binary in $ETCD", err)
	}
	return b, nil
}

// needEtcd skips a test when there is no etcd, unless CI asked for every
// test.
func needEtcd(t testing.TB) {
	t.Helper()
	if noEtcd == nil {
		return
	}
	if os.Getenv(ciEnv) != "" {
		t.Fatalf("no etcd: %v (and %s is set, so the test cannot be skipped)", noEtcd, ciEnv)
	}
	t.Skipf("no etcd: %v", noEtcd)
}

// tempRoot puts etcd's data on a memory file system where there is one: its
// fsyncs then cost nothing, which keeps the tests fast on a busy disk.
func tempRoot() string {
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// etcdServer is one running etcd member.
type etcdServer struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	logPath   string
	exited    chan struct{}
}

// startCluster starts n members named prefix-0 … on free loopback ports
// under dir and waits until they serve requests.
func startCluster(dir, prefix string, n int) ([]*etcdServer, error) {
	if noEtcd != nil {
		return nil, noEtcd
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	servers := make([]*etcdServer, n)
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", name, ports[2*i+1]))
		servers[i] = &etcdServer{name: name, clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])}
	}
	for i, s := range servers {
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		s.logPath = filepath.Join(dir, s.name+".log")
		logFile, err := os.Create(s.logPath)
		if err != nil {
			return nil, err
		}
		s.cmd = exec.Command(etcdBinary,
			"--name", s.name,
			"--data-dir", filepath.Join(dir, s.name),
			"--listen-client-urls", s.clientURL,
			"--advertise-client-urls", s.clientURL,
			"--listen-peer-urls", peerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", prefix,
			"--initial-cluster-state", "new",
			// Short election timeouts make a failover quick, and let
			// leases be as short as one second.
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap", "--log-level", "warn",
		)
		s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
		if err := s.cmd.Start(); err != nil {
			logFile.Close()
			return nil, fmt.Errorf("starting %s: %w", etcdBinary, err)
		}
		logFile.Close()
		s.exited = make(chan struct{})
		go func() { s.cmd.Wait(); close(s.exited) }()
	}
	for _, s := range servers {
		if err := s.waitReady(15 * time.Second); err != nil {
			for _, s := range servers {
				s.stop()
			}
			return nil, err
		}
	}
	return servers, nil
}

// freePorts picks n loopback ports that are free now. Another program could
// take one before etcd binds it; on a test machine that does not happen.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady waits until the member answers a linearizable read, which needs
// a leader.
func (s *etcdServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c, err := newClient(s.clientURL)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "ready")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("etcd %s exited at start-up:\n%s", s.name, s.log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s not ready after %v: %v\n%s", s.name, timeout, err, s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *etcdServer) log() string {
	data, _ := os.ReadFile(s.logPath)
	return string(data)
}

// stop kills the member at once, as a crash would.
func (s *etcdServer) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Counters on a member's /metrics page.
const (
	renewedMetric = "etcd_debugging_lease_renewed_total"
	streamsMetric = `grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}`
)

// metric reads one counter from a member's /metrics page.
func metric(t testing.TB, s *etcdServer, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.clientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// newClient returns a client that logs nothing, for the given endpoints.
func newClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// testClient returns a client of the shared server, closed after the test.
func testClient(t *testing.T) *clientv3.Client {
	t.Helper()
	needEtcd(t)
	c, err := newClient(shared.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testKey returns a lock key of the test's own, so that tests sharing the
// server do not meet, nor do runs of one test (go test -count): a lock
// whose client was closed stays until its TTL has passed.
func testKey(t *testing.T) string {
	return fmt.Sprintf("/etcdlock-test/%s-%d", t.Name(), time.Now().UnixNano())
}

// helper is a running child process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startHelper(t *testing.T, mode string, args ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperArgsEnv+"="+strings.Join(args, "\n"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return h
}

// next returns the helper's next report, split into its verb and the rest.
func (h *helper) next(t *testing.T) (verb, rest string) {
	t.Helper()
	if !h.lines.Scan() {
		t.Fatalf("%s ended without a report: %v", os.Getenv(helperEnv), h.lines.Err())
	}
	verb, rest, _ = strings.Cut(h.lines.Text(), " ")
	return verb, rest
}

// expect reads the next report and fails unless its verb is want.
func (h *helper) expect(t *testing.T, want string) string {
	t.Helper()
	verb, rest := h.next(t)
	if verb != want {
		t.Fatalf("helper reported %q %q, want %q", verb, rest, want)
	}
	return rest
}

// finish closes the helper's stdin, which makes it release its lock and
// exit, and waits for it to exit successfully.
func (h *helper) finish(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

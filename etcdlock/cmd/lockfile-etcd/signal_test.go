//go:build unix

package main

import (
	"syscall"
	"testing"
	"time"
)

// TestSignalsReachCommandOnce sends TERM and INT to lockfile while COMMAND
// runs: COMMAND must get each once, and lockfile die of the signal that
// COMMAND died of.
func TestSignalsReachCommandOnce(t *testing.T) {
	needEtcd(t)
	for name, sig := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT} {
		t.Run(name, func(t *testing.T) {
			script := `trap 'echo got; trap - ` + name + `; kill -` + name + ` $$' ` + name + `
echo ready
while :; do sleep 0.05 & wait $!; done`
			p := startLockfile(t, "run", "--etcd", server.addr, testKey(t), "sh", "-c", script)
			if line := p.next(t, 10*time.Second); line != "ready" {
				t.Fatalf("COMMAND said %q", line)
			}
			p.cmd.Process.Signal(sig)
			status := p.wait(t, 10*time.Second)
			var got []string
			for line := range p.lines {
				got = append(got, line)
			}
			if len(got) != 1 || got[0] != "got" {
				t.Errorf("COMMAND said %q after the signal, want one \"got\"", got)
			}
			if !status.Signaled() || status.Signal() != sig {
				t.Errorf("lockfile ended with %v, want death by %v; stderr: %s", status, sig, p.errors())
			}
		})
	}
}

//go:build !unix

package main

import (
	"fmt"
	"os"

	"github.com/golockfile/lockfile/etcdlock"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// guardianName is never the name this program runs under here.
const guardianName = "\x00"

func guard() int { return exitFailed }

func catchSignals() <-chan os.Signal { return nil }

func endsProgram(os.Signal) bool { return true }

func dieOf(os.Signal) int { return exitFailed }

// runHeld refuses: stopping COMMAND before the lock can go to another is
// built for Unix only.
func runHeld(client *clientv3.Client, l *etcdlock.Lock, c runConfig, command string,
	argv []string, signals <-chan os.Signal) int {
	l.Close()
	client.Close()
	fmt.Fprintf(os.Stderr, "lockfile: run --etcd is not supported on this system yet\n")
	return exitFailed
}

//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/golockfile/lockfile/etcdlock"
	"github.com/golockfile/lockfile/internal/cli"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// forwardedSignals are the signals passed on to COMMAND: those that end a
// program by default and are sent, not caused by a fault or a write (as
// SIGPIPE is), with SIGWINCH, which a terminal sends, and SIGCONT, which
// resumes a stopped job.
func forwardedSignals() []syscall.Signal {
	return append([]syscall.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGXCPU, syscall.SIGXFSZ,
		syscall.SIGVTALRM, syscall.SIGWINCH, syscall.SIGCONT,
	}, osSignals()...)
}

// endsProgram reports whether sig ends a program that does not catch it.
func endsProgram(sig os.Signal) bool {
	return sig != syscall.SIGWINCH && sig != syscall.SIGCONT
}

// childEvent is a change of COMMAND's state: it exited, or it stopped.
type childEvent struct{ status unix.WaitStatus }

// reap waits for lockfile's children, COMMAND among them, and for the
// orphans that lockfile adopts as their subreaper, and sends COMMAND's
// changes of state. It returns when no child is left.
func reap(pid int) <-chan childEvent {
	events := make(chan childEvent, 4)
	go func() {
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, unix.WUNTRACED, nil)
			switch {
			case errors.Is(err, unix.EINTR):
			case err != nil:
				return
			case got == pid:
				events <- childEvent{ws}
			}
		}
	}()
	return events
}

// runHeld runs COMMAND while l is held, and stops its process group before
// the lock can go to anyone else.
func runHeld(client *clientv3.Client, l *etcdlock.Lock, c runConfig, command string,
	argv []string, signals <-chan os.Signal) int {
	defer client.Close()
	g, err := startGuardian()
	if err != nil {
		l.Close()
		return failed(fmt.Errorf("starting the guardian that stops COMMAND if lockfile dies: %w", err))
	}
	adoptOrphans()
	tty := foregroundTerminal()
	proc, err := os.StartProcess(command, argv, &os.ProcAttr{
		Env:   commandEnv(l),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   commandAttr(tty),
	})
	if err != nil {
		g.disarm()
		tty.reclaim()
		tty.close()
		l.Close()
		return commandFailed(argv[0], err)
	}
	pid := proc.Pid // the leader of its process group
	s := &supervisor{pid: pid, tty: tty, clock: l, events: reap(pid)}
	s.killLead, s.termLead = stopLeads(c.ttl)
	if err := g.arm(pid); err != nil {
		// Unguarded, COMMAND could outlive lockfile and the lock.
		s.stop(time.Now(), err)
		tty.reclaim()
		tty.close()
		l.Close()
		return failed(fmt.Errorf("the guardian that stops COMMAND if lockfile dies is gone: %w", err))
	}
	status, lost := s.supervise(l.Lost(), signals)
	g.disarm()
	tty.reclaim()
	tty.close()
	if lost != nil {
		// The group is dead: a revocation now only frees the lock sooner.
		closed := make(chan struct{})
		go func() { l.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(250 * time.Millisecond):
		}
		fmt.Fprintf(os.Stderr, "lockfile: lost the lock %s while COMMAND ran (%v); stopped COMMAND\n",
			l.Key(), lost)
		return exitLost
	}
	if err := l.Close(); errors.Is(err, etcdlock.ErrLost) {
		fmt.Fprintf(os.Stderr, "lockfile: the lock %s was lost as COMMAND ended: %v\n", l.Key(), err)
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "lockfile: %v; the lock is free once its TTL has passed\n", err)
	}
	client.Close()
	switch {
	case status.Signaled():
		return dieOf(status.Signal())
	case status.Exited():
		return status.ExitStatus()
	}
	return exitFailed
}

// supervisor watches COMMAND and the lock.
type supervisor struct {
	pid                int // COMMAND's process id and process group id
	tty                *terminal
	clock              *etcdlock.Lock // its Deadline is when etcd may let the lease expire
	events             <-chan childEvent
	killLead, termLead time.Duration
	stopped            bool // COMMAND stopped, and lockfile with it
}

var errNotRenewed = errors.New("etcd did not confirm the lease in time")

// supervise passes signals to COMMAND until it exits, and returns its
// status. If the lock is being lost, it stops COMMAND's group, and returns
// why once the group is dead.
func (s *supervisor) supervise(lostCh <-chan struct{},
	signals <-chan os.Signal) (unix.WaitStatus, error) {
	timer := time.NewTimer(time.Until(s.clock.Deadline().Add(-s.termLead)))
	defer timer.Stop()
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGCONT && s.stopped {
				if s.expired() {
					return s.stop(time.Now(), errNotRenewed)
				}
				s.resume()
				continue
			}
			unix.Kill(s.pid, sig.(syscall.Signal))
		case ev := <-s.events:
			if ev.status.Stopped() {
				s.suspend()
				continue
			}
			return ev.status, nil
		case <-lostCh:
			return s.stop(time.Now(), etcdlock.ErrLost)
		case <-timer.C:
			deadline := s.clock.Deadline()
			if wait := time.Until(deadline.Add(-s.termLead)); wait > 0 {
				timer.Reset(wait)
				continue
			}
			return s.stop(deadline.Add(-s.killLead), errNotRenewed)
		}
	}
}

// expired reports whether the time to stop COMMAND has come, as it may
// have while lockfile was stopped.
func (s *supervisor) expired() bool {
	return !time.Now().Before(s.clock.Deadline().Add(-s.termLead))
}

// stop sends COMMAND's group SIGTERM, then SIGKILL at killAt, and returns
// once the group is dead, with why.
func (s *supervisor) stop(killAt time.Time, why error) (unix.WaitStatus, error) {
	var status unix.WaitStatus
	if time.Now().Before(killAt) && !s.stopped {
		unix.Kill(-s.pid, unix.SIGTERM)
		timer := time.NewTimer(time.Until(killAt))
		defer timer.Stop()
	term:
		for {
			select {
			case ev := <-s.events:
				if !ev.status.Stopped() {
					status = ev.status
				}
				if s.groupGone() {
					return status, why
				}
			case <-time.After(5 * time.Millisecond):
				if s.groupGone() {
					return status, why
				}
			case <-timer.C:
				break term
			}
		}
	}
	unix.Kill(-s.pid, unix.SIGKILL)
	for give := time.Now().Add(2 * time.Second); !s.groupGone() && time.Now().Before(give); {
		time.Sleep(2 * time.Millisecond)
	}
	return status, why
}

// groupGone reports whether COMMAND's process group has no process left
// that is not a zombie.
func (s *supervisor) groupGone() bool {
	return errors.Is(unix.Kill(-s.pid, 0), unix.ESRCH) || zombiesOnly(s.pid)
}

// suspend stops lockfile too when COMMAND has stopped at a terminal's
// request (^Z), giving the terminal back to lockfile's group, so that the
// shell sees its job stopped.
func (s *supervisor) suspend() {
	if s.tty == nil || !s.tty.given {
		return
	}
	s.tty.reclaim()
	s.stopped = true
	unix.Kill(os.Getpid(), unix.SIGSTOP)
}

// resume gives COMMAND the terminal back if lockfile was resumed in the
// foreground, and continues it.
func (s *supervisor) resume() {
	s.stopped = false
	if s.tty.foreground() {
		s.tty.give(s.pid)
	}
	unix.Kill(-s.pid, unix.SIGCONT)
}

// catchSignals returns the channel on which the forwarded signals arrive,
// as cli.CatchSignals does. COMMAND inherits what is ignored.
func catchSignals() <-chan os.Signal { return cli.CatchSignals(forwardedSignals(), 16) }

// dieOf ends lockfile by sig, as cli.DieOf does.
func dieOf(sig os.Signal) int { return cli.DieOf(sig) }

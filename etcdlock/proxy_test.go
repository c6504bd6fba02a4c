//go:build unix

package etcdlock

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// A proxy stands between clients and an etcd member on a loopback port of
// its own, and injects network faults into what passes: it can hold the
// member's answers back, as a one-way partition does, and delay every
// byte, as a slow link does. Held or delayed bytes are delivered in order
// later, never dropped.
type proxy struct {
	url    string
	target string
	ln     net.Listener

	mu      sync.Mutex
	changed *sync.Cond
	held    [2]bool       // requests, answers wait while held
	delay   time.Duration // each way
	conns   []net.Conn
}

// startProxy starts a proxy to the member at clientURL, closed after the
// test.
func startProxy(t *testing.T, clientURL string) *proxy {
	t.Helper()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{url: "http://" + ln.Addr().String(), target: u.Host, ln: ln}
	p.changed = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// hold holds back the requests to the member, its answers, or both, until
// a call without them.
func (p *proxy) hold(requests, answers bool) {
	p.mu.Lock()
	p.held = [2]bool{requests, answers}
	p.mu.Unlock()
	p.changed.Broadcast()
}

// setDelay delays each byte by d, each way, from now on.
func (p *proxy) setDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.held = [2]bool{}
	p.mu.Unlock()
	p.changed.Broadcast()
}

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.forward(client, server, 0)
		go p.forward(server, client, 1)
	}
}

type chunk struct {
	data []byte
	read time.Time
}

// forward copies from src to dst, chunk by chunk, each no sooner than the
// delay after it was read and not while its direction, dir (0 for
// requests, 1 for answers), is held.
func (p *proxy) forward(src, dst net.Conn, dir int) {
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range chunks {
		p.mu.Lock()
		for p.held[dir] {
			p.changed.Wait()
		}
		delay := p.delay
		p.mu.Unlock()
		time.Sleep(time.Until(c.read.Add(delay)))
		if _, err := dst.Write(c.data); err != nil {
			src.Close()
			for range chunks { // until the reader sees src closed
			}
			return
		}
	}
}

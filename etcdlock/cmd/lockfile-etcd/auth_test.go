//go:build unix

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestUserAuthenticates runs lockfile against an etcd server of its own
// with authentication on: --user NAME:PASSWORD and --user NAME --password
// PASSWORD take the lock, a wrong password is refused.
func TestUserAuthenticates(t *testing.T) {
	needEtcd(t)
	s, err := startEtcd(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	c, err := newClient(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", "s3cret"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for _, user := range [][]string{
		{"--user", "root:s3cret"},
		{"--user", "root", "--password", "s3cret"},
	} {
		args := append(append([]string{"run", "--etcd", s.addr}, user...), "/auth", "echo", "ran")
		if r := runLockfile(t, args...); r.code() != 0 || r.stdout != "ran\n" {
			t.Errorf("lockfile %q: status %d, stdout %q, stderr %q", args, r.code(), r.stdout, r.stderr)
		}
	}
	r := runLockfile(t, "run", "--etcd", s.addr, "--user", "root:wrong", "/auth", "echo", "ran")
	refused := strings.Contains(r.stderr, "authentication failed")
	if r.code() != exitFailed || r.stdout != "" || !refused {
		t.Errorf("wrong password: status %d, stdout %q, stderr %q; want %d", r.code(), r.stdout, r.stderr,
			exitFailed)
	}
	// Without a user, etcd refuses the lock's requests.
	anonymous, err := clientv3.New(clientv3.Config{Endpoints: []string{s.addr}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anonymous.Close()
	if _, err := anonymous.Get(ctx, "/auth/"); err == nil {
		t.Fatal("etcd answered a client without a user: authentication is not on")
	}
}

// TestTLS runs lockfile against an etcd server of its own that serves
// clients over TLS and wants their certificates: --cacert, --cert and
// --key take the lock; without the client certificate, lockfile fails.
func TestTLS(t *testing.T) {
	needEtcd(t)
	dir := t.TempDir()
	files := writeCerts(t, dir)
	caPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(files["ca.pem"])
	caPool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(files["client.pem"], files["client-key.pem"])
	if err != nil {
		t.Fatal(err)
	}
	clientTLS := &tls.Config{RootCAs: caPool, Certificates: []tls.Certificate{pair}}
	s, err := startEtcd(dir, clientTLS, "--cert-file", files["server.pem"],
		"--key-file", files["server-key.pem"], "--trusted-ca-file", files["ca.pem"],
		"--client-cert-auth")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	for _, endpoint := range []string{s.addr, "https://" + s.addr} {
		r := runLockfile(t, "run", "--etcd", endpoint, "--cacert", files["ca.pem"],
			"--cert", files["client.pem"], "--key", files["client-key.pem"], "/tls", "echo", "ran")
		if r.code() != 0 || r.stdout != "ran\n" {
			t.Errorf("--etcd %s with TLS flags: status %d, stdout %q, stderr %q",
				endpoint, r.code(), r.stdout, r.stderr)
		}
	}
	r := runLockfile(t, "status", "--etcd", "https://"+s.addr, "--cacert", files["ca.pem"], "/tls")
	if r.code() != exitFailed || r.stdout != "" {
		t.Errorf("status without a client certificate: status %d, stdout %q, stderr %q; want %d",
			r.code(), r.stdout, r.stderr, exitFailed)
	}
}

// writeCerts writes a CA, and a server and a client certificate it signed,
// for 127.0.0.1, into dir, and returns their paths by name.
func writeCerts(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	write := func(name, kind string, der []byte) {
		files[name] = filepath.Join(dir, name)
		data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
		if err := os.WriteFile(files[name], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	now := time.Now()
	caKey := newKey()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		key := newKey()
		cert := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)),
			Subject:   pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth,
				x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, cert, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	return files
}

//go:build linux

package etcd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/etcd/etcdtest"
)

// needEtcd skips (fails in CI) without the etcd server.
func needEtcd(t *testing.T) {
	t.Helper()
	if !etcdtest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
		}
		t.Skipf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
	}
}

// startEtcd starts an etcd cluster of n members for t.
func startEtcd(t *testing.T, n int) *etcdtest.Cluster {
	t.Helper()
	needEtcd(t)
	c, err := etcdtest.Start(context.Background(), t.TempDir(), etcdtest.Options{Members: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func openCluster(t *testing.T, ec *etcdtest.Cluster, kr *Keyring, prefix string) *Cluster {
	t.Helper()
	if kr == nil {
		kr, _ = NewKeyring(testKey(9))
	}
	c, err := Open(Options{Endpoints: ec.Endpoints(), Prefix: prefix, Keyring: kr, OpTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func view(t *testing.T, c *Cluster, host string) *View {
	t.Helper()
	v, err := c.Host(host)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func recString(recs []store.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, string(r.Kind)+"/"+r.Name+"="+string(r.Value))
	}
	return strings.Join(s, " ")
}

// TestIntegrationEtcdStore covers one single-member cluster: layout,
// sealing, Load order, atomicity, optimistic concurrency, the watch,
// compaction, status keys and rewrapping after a KEK rotation.
func TestIntegrationEtcdStore(t *testing.T) {
	ec := startEtcd(t, 1)
	ctx := context.Background()
	c := openCluster(t, ec, nil, "/t1")
	a, b := view(t, c, "a"), view(t, c, "b")
	if _, err := a.Load(); err != nil {
		t.Fatal(err)
	}

	t.Run("layout and sealing", func(t *testing.T) {
		err := a.Commit([]store.Op{
			store.Put(store.KindTenant, "acme", []byte(`{"name":"acme"}`)),
			store.Put(store.KindVM, "web", []byte(`{"name":"web"}`)),
			store.Put(store.KindSA, "web-out", []byte(`{"enc_key":"SECRETKEYBYTES"}`)),
			store.Put(store.KindFDB, "acme/52:54:00:00:00:01", []byte(`{}`)),
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Client().Get(ctx, "/t1/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string][]byte{}
		for _, kv := range resp.Kvs {
			keys[string(kv.Key)] = kv.Value
		}
		for _, k := range []string{"/t1/fleet/tenant/acme", "/t1/hosts/a/vm/web", "/t1/hosts/a/sa/web-out",
			"/t1/hosts/a/fdb/acme/52:54:00:00:00:01", "/t1/fleet/~guard", "/t1/hosts/a/~guard", "/t1/members/a"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("key %s missing; have %v", k, keys)
			}
		}
		for k, v := range keys {
			if bytes.Contains(v, []byte("SECRET")) || bytes.Contains(v, []byte("acme\"")) {
				t.Errorf("%s holds plaintext: %s", k, v)
			}
		}
		// Host b sees the fleet-wide tenant, not a's records.
		recs, err := b.Load()
		if err != nil {
			t.Fatal(err)
		}
		if got := recString(recs); got != `tenant/acme={"name":"acme"}` {
			t.Errorf("b.Load = %s", got)
		}
		recs, err = a.Load()
		if err != nil {
			t.Fatal(err)
		}
		want := `tenant/acme={"name":"acme"} vm/web={"name":"web"} sa/web-out={"enc_key":"SECRETKEYBYTES"} fdb/acme/52:54:00:00:00:01={}`
		if got := recString(recs); got != want {
			t.Errorf("a.Load = %s\nwant       %s", got, want)
		}
	})

	t.Run("atomic", func(t *testing.T) {
		before, _ := a.Load()
		var ops []store.Op
		for i := range 200 {
			ops = append(ops, store.Put(store.KindSP, fmt.Sprintf("sp%d", i), []byte("{}")))
		}
		err := a.Commit(append([]store.Op{store.Delete(store.KindVM, "web")}, ops...))
		if err == nil || !strings.Contains(err.Error(), "--max-txn-ops") {
			t.Fatalf("commit of 201 ops: %v, want the --max-txn-ops error", err)
		}
		after, _ := a.Load()
		if recString(after) != recString(before) {
			t.Errorf("a refused commit changed the store:\n%s\n%s", recString(before), recString(after))
		}
	})

	t.Run("optimistic concurrency", func(t *testing.T) {
		// Two daemons' views of host a, both at the same state.
		a2 := view(t, c, "a")
		if _, err := a.Load(); err != nil {
			t.Fatal(err)
		}
		if _, err := a2.Load(); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit([]store.Op{store.Put(store.KindSA, "x", []byte("1"))}); err != nil {
			t.Fatal(err)
		}
		// a2 validated against the old state: refused.
		err := a2.Commit([]store.Op{store.Put(store.KindSA, "x", []byte("2"))})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("stale commit: %v, want ErrConflict", err)
		}
		if !a2.TakeConflict() || a2.TakeConflict() {
			t.Error("TakeConflict should report the conflict once")
		}
		// a's own commit moved its base: it may commit again.
		if err := a.Commit([]store.Op{store.Put(store.KindSA, "y", []byte("1"))}); err != nil {
			t.Fatal(err)
		}
		// A change of another host does not conflict with a.
		if _, err := b.Load(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit([]store.Op{store.Put(store.KindVM, "db", []byte("{}"))}); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit([]store.Op{store.Delete(store.KindSA, "y")}); err != nil {
			t.Fatalf("a conflicts with b's host-only change: %v", err)
		}
		// A fleet-wide change does.
		if err := b.Commit([]store.Op{store.Put(store.KindTenant, "globex", []byte("{}"))}); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit([]store.Op{store.Delete(store.KindSA, "x")}); !errors.Is(err, ErrConflict) {
			t.Errorf("a's commit after b changed a tenant: %v, want ErrConflict", err)
		}
		// RequireHostsUnchanged: any host's change after the revision
		// refuses the commit.
		_, rev, err := c.HostRecords(ctx, store.KindVM)
		if err != nil {
			t.Fatal(err)
		}
		a.Load()
		b.Load()
		if err := b.Commit([]store.Op{store.Put(store.KindVM, "db2", []byte("{}"))}); err != nil {
			t.Fatal(err)
		}
		a.RequireHostsUnchanged(rev)
		err = a.Commit([]store.Op{store.Delete(store.KindTenant, "globex")})
		a.RequireHostsUnchanged(0)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("commit after another host changed: %v, want ErrConflict", err)
		}
	})

	t.Run("watch", func(t *testing.T) {
		w := view(t, c, "w")
		if _, err := w.Load(); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch := w.Watch(wctx)
		first := next(t, ch)
		if !w.Accept(first) {
			t.Error("first snapshot not accepted")
		}
		other := view(t, c, "w")
		other.Load()
		if err := other.Commit([]store.Op{store.Put(store.KindVM, "v1", []byte(`{"n":1}`))}); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, ch, func(s *store.Snapshot) bool { return has(s, store.KindVM, "v1") })
		if !w.Accept(s) {
			t.Error("newer snapshot not accepted")
		}
		// The daemon's own commit overtakes the watch: an older snapshot
		// is refused.
		if err := w.Commit([]store.Op{store.Put(store.KindVM, "v2", []byte("{}"))}); err != nil {
			t.Fatal(err)
		}
		if w.Accept(s) {
			t.Error("snapshot older than the view's own commit accepted")
		}
		s = waitFor(t, ch, func(s *store.Snapshot) bool { return has(s, store.KindVM, "v2") })
		if !w.Accept(s) {
			t.Error("snapshot with the view's own commit refused")
		}
		// A deletion, and another host's change is not seen.
		view(t, c, "zz").Write(ctx, []store.Op{store.Put(store.KindVM, "foreign", []byte("{}"))})
		other.Load()
		other.Commit([]store.Op{store.Delete(store.KindVM, "v1")})
		s = waitFor(t, ch, func(s *store.Snapshot) bool { return !has(s, store.KindVM, "v1") })
		if has(s, store.KindVM, "foreign") {
			t.Error("another host's record in the snapshot")
		}
	})

	t.Run("compaction resync", func(t *testing.T) {
		w := view(t, c, "comp")
		if _, err := w.Load(); err != nil {
			t.Fatal(err)
		}
		// Changes after the Load, then the history is compacted away
		// before the watch starts: it must read everything again.
		other := view(t, c, "comp")
		for i := range 5 {
			other.Load()
			if err := other.Commit([]store.Op{store.Put(store.KindSA, fmt.Sprintf("s%d", i), []byte("{}"))}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := c.Client().Get(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client().Compact(ctx, resp.Header.Revision); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch := w.Watch(wctx)
		waitFor(t, ch, func(s *store.Snapshot) bool { return has(s, store.KindSA, "s4") })
	})

	t.Run("status", func(t *testing.T) {
		hctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			c.Heartbeat(hctx, "h1", 100*time.Millisecond, func() ([]byte, bool) { return []byte(`{"host":"h1"}`), true })
			close(done)
		}()
		var st map[string][]byte
		for i := 0; i < 50; i++ {
			var err error
			st, _, err = c.Statuses(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st["h1"] != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if string(st["h1"]) != `{"host":"h1"}` {
			t.Fatalf("status of h1: %q", st["h1"])
		}
		cancel()
		<-done
		st, members, err := c.Statuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st["h1"] != nil {
			t.Error("status key outlived a clean stop")
		}
		if !strings.Contains(strings.Join(members, ","), "a") {
			t.Errorf("members %v lack a", members)
		}
	})

	t.Run("rewrap after KEK rotation", func(t *testing.T) {
		kOld, _ := NewKeyring(testKey(9))
		kRot, _ := NewKeyring(testKey(10), testKey(9))
		kNew, _ := NewKeyring(testKey(10))
		cOld := openCluster(t, ec, kOld, "/rot")
		v := view(t, cOld, "h")
		v.Load()
		if err := v.Commit([]store.Op{store.Put(store.KindSA, "s", []byte("k")), store.Put(store.KindTenant, "t", []byte("{}"))}); err != nil {
			t.Fatal(err)
		}
		cNew := openCluster(t, ec, kNew, "/rot")
		vn := view(t, cNew, "h")
		if recs, err := vn.Load(); err != nil || len(recs) != 0 || len(vn.Unreadable()) != 2 {
			t.Fatalf("new key alone: %d records, unreadable %v, err %v", len(recs), vn.Unreadable(), err)
		}
		cRot := openCluster(t, ec, kRot, "/rot")
		n, bad, err := cRot.Rewrap(ctx, "h")
		if err != nil || n != 2 || bad != 0 {
			t.Fatalf("Rewrap = %d, %d, %v; want 2, 0", n, bad, err)
		}
		recs, err := vn.Load()
		if err != nil || recString(recs) != "tenant/t={} sa/s=k" {
			t.Fatalf("after rewrap, new key alone: %s %v (unreadable %v)", recString(recs), err, vn.Unreadable())
		}
		if n, _, _ := cRot.Rewrap(ctx, "h"); n != 0 {
			t.Errorf("second Rewrap rewrote %d", n)
		}
	})
}

func has(s *store.Snapshot, k store.Kind, name string) bool {
	for _, r := range s.Records {
		if r.Kind == k && r.Name == name {
			return true
		}
	}
	return false
}

func next(t *testing.T, ch <-chan *store.Snapshot) *store.Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot within 5s")
	}
	return nil
}

func waitFor(t *testing.T, ch <-chan *store.Snapshot, ok func(*store.Snapshot) bool) *store.Snapshot {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatal("the expected snapshot did not come within 5s")
		}
	}
}

// TestIntegrationEtcdQuorumLoss: with 2 of 3 members stopped the store is
// degraded (commits fail fast with ErrUnavailable, nothing changes), and
// it recovers, with the watch resuming, when they return.
func TestIntegrationEtcdQuorumLoss(t *testing.T) {
	ec := startEtcd(t, 3)
	ctx := context.Background()
	c := openCluster(t, ec, nil, "/q")
	v := view(t, c, "a")
	v.Load()
	if err := v.Commit([]store.Op{store.Put(store.KindVM, "v0", []byte("{}"))}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := v.Watch(wctx)
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	go c.Heartbeat(hctx, "a", 200*time.Millisecond, func() ([]byte, bool) { return []byte("{}"), false })

	// One member down: everything keeps working.
	ec.Members[0].Kill()
	other := view(t, c, "a")
	if _, err := other.Load(); err != nil {
		t.Fatalf("load with one member down: %v", err)
	}
	if err := other.Commit([]store.Op{store.Put(store.KindVM, "v1", []byte("{}"))}); err != nil {
		t.Fatalf("commit with one member down: %v", err)
	}
	waitFor(t, ch, func(s *store.Snapshot) bool { return has(s, store.KindVM, "v1") })

	// Quorum lost.
	ec.Members[1].Kill()
	deadline := time.Now().Add(10 * time.Second)
	for c.Health().OK {
		if time.Now().After(deadline) {
			t.Fatal("not degraded 10s after losing quorum")
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	err := other.Commit([]store.Op{store.Put(store.KindVM, "v2", []byte("{}"))})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "degraded") {
		t.Fatalf("commit without quorum: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("commit without quorum took %v; it should fail fast while degraded", d)
	}

	// Back: healthy again, and a change made now reaches the watch.
	for _, m := range ec.Members[:2] {
		if err := m.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := ec.WaitReady(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var cerr error
	for i := 0; i < 100; i++ {
		other.Load()
		if cerr = other.Commit([]store.Op{store.Put(store.KindVM, "v3", []byte("{}"))}); cerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cerr != nil {
		t.Fatalf("commit after the members returned: %v", cerr)
	}
	s := waitFor(t, ch, func(s *store.Snapshot) bool { return has(s, store.KindVM, "v3") })
	if has(s, store.KindVM, "v2") {
		t.Error("the refused commit reached the store")
	}
	for i := 0; i < 50 && !c.Health().OK; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !c.Health().OK {
		t.Errorf("still degraded after recovery: %+v", c.Health())
	}
}

// TestIntegrationEtcdTLSAuth: TLS with client certificates and etcd
// authentication.
func TestIntegrationEtcdTLSAuth(t *testing.T) {
	needEtcd(t)
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	issue(t, dir, "server", ca, caKey, true)
	issue(t, dir, "client", ca, caKey, false)
	ec, err := etcdtest.Start(context.Background(), dir, etcdtest.Options{TLS: true, Extra: []string{
		"--cert-file", filepath.Join(dir, "server.pem"), "--key-file", filepath.Join(dir, "server-key.pem"),
		"--client-cert-auth", "--trusted-ca-file", filepath.Join(dir, "ca.pem"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	tlsCfg, err := TLSConfig(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := NewKeyring(testKey(5))
	ctx := context.Background()
	// Enable auth with a root user.
	admin, err := Open(Options{Endpoints: ec.Endpoints(), TLS: tlsCfg, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	cli := admin.Client()
	for _, f := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()

	c, err := Open(Options{Endpoints: ec.Endpoints(), TLS: tlsCfg, Keyring: kr, Username: "root", Password: "rootpw"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v := view(t, c, "a")
	if _, err := v.Load(); err != nil {
		t.Fatal(err)
	}
	if err := v.Commit([]store.Op{store.Put(store.KindTenant, "t", []byte("{}"))}); err != nil {
		t.Fatal(err)
	}
	if recs, err := v.Load(); err != nil || len(recs) != 1 {
		t.Fatalf("Load over TLS with auth: %v %v", recs, err)
	}
	// Without credentials: refused (not reported as unreachable).
	anon, err := Open(Options{Endpoints: ec.Endpoints(), TLS: tlsCfg, Keyring: kr, OpTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	va := view(t, anon, "a")
	if _, err := va.Load(); err == nil {
		t.Error("Load without credentials succeeded")
	}
	// Plain text against the TLS port fails.
	plain, _ := Open(Options{Endpoints: ec.Endpoints(), Keyring: kr, OpTimeout: time.Second})
	defer plain.Close()
	if _, err := view(t, plain, "a").Load(); err == nil {
		t.Error("plain-text Load against a TLS member succeeded")
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vifsec test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

//go:build linux

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/etcd"
	"github.com/vifsec/vifsec/internal/store/etcd/etcdtest"
)

// host is one fleet host in this process: its Fleet, running, and its API.
type host struct {
	f    *Fleet
	srv  *httptest.Server
	stop func() // a clean stop (idempotent)
}

func startHost(t *testing.T, ctx context.Context, ec *etcdtest.Cluster, kr *etcd.Keyring, name, dir string) *host {
	t.Helper()
	c, err := etcd.Open(etcd.Options{Endpoints: ec.Endpoints(), Prefix: "/ft", Keyring: kr, OpTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f, err := Open(ctx, Config{Cluster: c, Host: name, StateDir: dir, Version: "test", Daemon: &daemon.Config{}, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(rctx) })
	wg.Go(func() { f.Daemon().Run(rctx) }) // as vifsecd: keeps the sequence reservations
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	h := &host{f: f, srv: httptest.NewServer(api.NewFleetHandler(f, nil, "test")), stop: stop}
	t.Cleanup(h.srv.Close)
	return h
}

// do sends a request to h's API; query may carry ?host=.
func (h *host) do(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func (h *host) must(t *testing.T, method, path string, body any) string {
	t.Helper()
	code, out := h.do(t, method, path, body)
	if code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	return out
}

func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func saReq(vm, name string, spi int) api.SAAddRequest {
	return api.SAAddRequest{VM: vm, SAName: name, SASource: "2001:db8:1::1", SADestination: "2001:db8:1::2", SAMode: "transport",
		SASPI: fmt.Sprintf("0x%x", spi), EncryptionAlgorithm: "aes128-gcm", EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213",
		IntegrityAlgorithm: "none"}
}

// TestIntegrationFleetHosts: two hosts on one etcd member: requests for
// another host's objects, concurrent writers, fleet-wide checks, status,
// a VM move with its sequence numbers, and a restart that continues them.
func TestIntegrationFleetHosts(t *testing.T) {
	if !etcdtest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
		}
		t.Skipf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
	}
	ctx := context.Background()
	// A move of VM web (41 SAs, each with its reservation) is one
	// transaction of 166 operations: above etcd's default of 128.
	ec, err := etcdtest.Start(ctx, t.TempDir(), etcdtest.Options{Extra: []string{"--max-txn-ops", "512"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	kr, _ := etcd.NewKeyring(bytes.Repeat([]byte{3}, 32))
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startHost(t, ctx, ec, kr, "a", dirA)
	b := startHost(t, ctx, ec, kr, "b", dirB)

	a.must(t, "POST", "/v2/tenants", api.TenantAddRequest{Tenant: "acme"})
	a.must(t, "POST", "/v2/vms?host=b", api.VMAttachRequest{VM: "web", Tenant: "acme", Dev: "vweb", MAC: "52:54:00:00:00:01", VLAN: "100"})
	a.must(t, "POST", "/v2/sa?host=b", saReq("web", "web-out", 0x1000))
	eventually(t, 2*time.Second, func() error {
		if b.f.Daemon().SADB().Get("web-out") == nil {
			return fmt.Errorf("host b has no web-out")
		}
		return nil
	})
	if a.f.Daemon().SADB().Len() != 0 || len(a.f.Daemon().VMs()) != 0 {
		t.Error("host a got host b's objects")
	}
	// Reads of another host's objects.
	if out := a.must(t, "GET", "/v2/sa?host=b", nil); !strings.Contains(out, "web-out") || strings.Contains(out, "000102") {
		t.Errorf("GET /v2/sa?host=b: %s", out)
	}
	// Validation on the target's state, with the same messages.
	if code, out := a.do(t, "POST", "/v2/sa?host=b", saReq("web", "web-out", 0x1001)); code != 409 || !strings.Contains(out, "--sa-name") {
		t.Errorf("duplicate SA through host a: %d %s", code, out)
	}
	if code, out := a.do(t, "POST", "/v2/sa?host=-bad", saReq("web", "x", 0x1001)); code != 400 || !strings.Contains(out, "--host") {
		t.Errorf("bad --host: %d %s", code, out)
	}

	t.Run("concurrent writers", func(t *testing.T) {
		// Both hosts add SAs to host b at once: every one lands, none is
		// lost to a race (the loser of a race is retried).
		var wg sync.WaitGroup
		errs := make(chan string, 40)
		for i := range 20 {
			for _, h := range []*host{a, b} {
				wg.Go(func() {
					spi := 0x2000 + i*2
					if h == b {
						spi++
					}
					path := "/v2/sa"
					if h == a {
						path += "?host=b"
					}
					if code, out := h.do(t, "POST", path, saReq("web", fmt.Sprintf("c%x", spi), spi)); code != 201 {
						errs <- fmt.Sprintf("%d %s", code, out)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		eventually(t, 2*time.Second, func() error {
			if n := b.f.Daemon().SADB().Len(); n != 41 {
				return fmt.Errorf("host b has %d SAs, want 41", n)
			}
			return nil
		})
	})

	t.Run("tenant in use on another host", func(t *testing.T) {
		code, out := a.do(t, "DELETE", "/v2/tenants/acme", nil)
		if code != 409 || !strings.Contains(out, "web (host b)") {
			t.Errorf("tenant remove while host b uses it: %d %s", code, out)
		}
	})

	t.Run("status", func(t *testing.T) {
		eventually(t, 3*time.Second, func() error {
			var st api.FleetStatus
			json.Unmarshal([]byte(a.must(t, "GET", "/v2/fleet", nil)), &st)
			if len(st.Hosts) != 2 || st.Hosts[1].Host != "b" || st.Hosts[1].VMCount != 1 || st.Hosts[1].SAs != 41 || st.Hosts[1].State != "ok" {
				return fmt.Errorf("fleet status: %+v", st)
			}
			return nil
		})
		var h api.Health
		json.Unmarshal([]byte(b.must(t, "GET", "/v2/health", nil)), &h)
		if h.State != "ok" || h.SAs != 41 || h.VMs != 1 || h.Revision == 0 {
			t.Errorf("health of b: %+v", h)
		}
	})

	t.Run("move with sequence numbers", func(t *testing.T) {
		s := b.f.Daemon().SADB().Get("web-out")
		for range 1000 {
			s.NextSeq()
		}
		limB := s.SeqLimit()
		out := b.must(t, "POST", "/v2/vms/web/move", api.MoveRequest{ToHost: "a", Dev: "vweb2"})
		if strings.Contains(out, "refuses") {
			t.Errorf("move warned: %s", out)
		}
		eventually(t, 2*time.Second, func() error {
			if a.f.Daemon().SADB().Get("web-out") == nil || b.f.Daemon().SADB().Get("web-out") != nil {
				return fmt.Errorf("web-out not moved yet")
			}
			return nil
		})
		// Host a continues above everything host b could send under its
		// reservation, once its own renewal is durable.
		var seqA uint64
		eventually(t, 2*time.Second, func() error {
			n, d := a.f.Daemon().SADB().Get("web-out").NextSeq()
			if d != drop.None {
				return fmt.Errorf("web-out on host a: %v", d)
			}
			seqA = n
			return nil
		})
		if seqA <= limB {
			t.Errorf("web-out continues at %d on host a, want above host b's limit %d", seqA, limB)
		}
		// Host b cannot extend it any more: it left with the move.
		if _, d := s.NextSeq(); d == drop.None && s.SeqLimit() > limB {
			t.Errorf("host b's web-out extended its reservation after the move (limit %d)", s.SeqLimit())
		}
		if vms := a.f.Daemon().VMs(); len(vms) != 1 || vms[0].Dev != "vweb2" {
			t.Errorf("moved VM: %+v", vms)
		}
		// Back to b through a third party's view (--host a): the
		// reservation moves too.
		limA := a.f.Daemon().SADB().Get("web-out").SeqLimit()
		code, out := b.do(t, "POST", "/v2/vms/web/move?host=a", api.MoveRequest{ToHost: "b"})
		if code != 200 || strings.Contains(out, "refuses") {
			t.Errorf("move through another host: %d %s", code, out)
		}
		eventually(t, 2*time.Second, func() error {
			x := b.f.Daemon().SADB().Get("web-out")
			if x == nil {
				return fmt.Errorf("not back")
			}
			n, d := x.NextSeq()
			if d != drop.None {
				return fmt.Errorf("web-out back on b: %v", d)
			}
			if n <= limA {
				t.Errorf("web-out back on b continues at %d, want above host a's limit %d", n, limA)
			}
			return nil
		})
		// Refused onto a host with a clash.
		eventually(t, 2*time.Second, func() error {
			if b.f.Daemon().SADB().Get("web-out") == nil {
				return fmt.Errorf("not back")
			}
			return nil
		})
		a.must(t, "POST", "/v2/vms", api.VMAttachRequest{VM: "web", Tenant: "acme", Dev: "x", MAC: "52:54:00:00:00:09"})
		if code, out := b.do(t, "POST", "/v2/vms/web/move", api.MoveRequest{ToHost: "a"}); code != 409 || !strings.Contains(out, "vm web") {
			t.Errorf("move onto a clash: %d %s", code, out)
		}
	})

	t.Run("restart continues sequence numbers", func(t *testing.T) {
		s := b.f.Daemon().SADB().Get("web-out")
		var last uint64
		for range 5000 {
			if n, d := s.NextSeq(); d == drop.None {
				last = n
			}
		}
		b.stop() // clean: the exact last number is stored
		b2 := startHost(t, ctx, ec, kr, "b", dirB)
		if seq, d := b2.f.Daemon().SADB().Get("web-out").NextSeq(); d != drop.None || seq != last+1 {
			t.Errorf("after a restart web-out continues at %d (%v), want %d", seq, d, last+1)
		}
	})
}

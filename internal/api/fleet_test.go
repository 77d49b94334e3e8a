package api

import (
	"context"
	"errors"
	wire "github.com/vifsec/vifsec/api"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// fakeFleet serves every host with one daemon and loses the first races
// it is told to.
type fakeFleet struct {
	d       *daemon.Daemon
	races   int // Exec reports retry this many times
	execs   []ExecOptions
	hosts   []string
	unavail bool
}

func (f *fakeFleet) Self() string   { return "a" }
func (f *fakeFleet) Health() Health { return Health{Store: "etcd", Host: "a", State: "ok"} }
func (f *fakeFleet) Status(context.Context) (FleetStatus, error) {
	return FleetStatus{Self: "a", Store: "ok"}, nil
}
func (f *fakeFleet) Exec(_ context.Context, host string, o ExecOptions, fn func(*daemon.Daemon)) (bool, error) {
	if f.unavail {
		return false, errors.New("fleet store unreachable")
	}
	f.execs = append(f.execs, o)
	f.hosts = append(f.hosts, host)
	fn(f.d)
	if f.races > 0 {
		f.races--
		return true, nil
	}
	return false, nil
}
func (f *fakeFleet) MoveVM(_ context.Context, from, vm string, r MoveRequest) ([]string, error) {
	return []string{from + ":" + vm + ":" + r.ToHost}, nil
}

func TestFleetHandler(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFleet{d: d}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newFleetHandler(f, nil, "test", 100*time.Millisecond))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	c := wire.NewClient(sock)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://vifsecd"+path, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}

	tests := []struct {
		name       string
		method     string
		path, body string
		races      int
		unavail    bool
		wantCode   int
		wantBody   string
		wantHost   string
		wantWrite  bool
		wantTenant string
	}{
		{name: "read, this host", method: "GET", path: "/v2/tenants", wantCode: 200, wantBody: "[]"},
		{name: "read, own name", method: "GET", path: "/v2/tenants?host=a", wantCode: 200, wantHost: ""},
		{name: "read, other host", method: "GET", path: "/v2/sa?host=b", wantCode: 200, wantHost: "b"},
		{name: "write retried after a lost race", method: "POST", path: "/v2/tenants?host=b", body: `{"tenant":"t1"}`, races: 1,
			wantCode: 409, wantBody: "already exists", wantHost: "b", wantWrite: true},
		{name: "write", method: "POST", path: "/v2/tenants", body: `{"tenant":"t2"}`, wantCode: 201, wantWrite: true},
		{name: "tenant removal is checked fleet-wide", method: "DELETE", path: "/v2/tenants/t2", wantCode: 200, wantWrite: true, wantTenant: "t2"},
		{name: "always losing", method: "POST", path: "/v2/tenants", body: `{"tenant":"t3"}`, races: 99, wantCode: 409, wantBody: "kept changing", wantWrite: true},
		{name: "store unreachable", method: "GET", path: "/v2/sa?host=b", unavail: true, wantCode: 503, wantBody: "unavailable"},
		{name: "bad host", method: "GET", path: "/v2/sa?host=a%2Fb", wantCode: 400, wantBody: "--host"},
		{name: "health", method: "GET", path: "/v2/health", wantCode: 200, wantBody: `"state": "ok"`},
		{name: "move", method: "POST", path: "/v2/vms/web/move?host=b", body: `{"to_host":"c"}`, wantCode: 200, wantBody: "b:web:c"},
		{name: "move without --to-host", method: "POST", path: "/v2/vms/web/move", body: `{}`, wantCode: 400, wantBody: "--to-host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.races, f.unavail, f.execs, f.hosts = tt.races, tt.unavail, nil, nil
			code, body := do(tt.method, tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s %s: %d %s; want %d with %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
			if len(f.execs) > 0 {
				if f.hosts[0] != tt.wantHost || f.execs[0].Write != tt.wantWrite || f.execs[0].RemoveTenant != tt.wantTenant {
					t.Errorf("Exec(%q, %+v), want host %q write %v tenant %q", f.hosts[0], f.execs[0], tt.wantHost, tt.wantWrite, tt.wantTenant)
				}
			}
			if tt.races == 1 && len(f.execs) != 2 {
				t.Errorf("%d attempts, want 2", len(f.execs))
			}
		})
	}
	// The client's ForHost adds ?host= without touching the base client.
	ch := c.ForHost("b")
	if _, err := ch.SAs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.hosts[len(f.hosts)-1] != "b" {
		t.Errorf("ForHost: Exec for %q", f.hosts[len(f.hosts)-1])
	}
	if _, err := c.SAs(context.Background()); err != nil || f.hosts[len(f.hosts)-1] != "" {
		t.Errorf("base client after ForHost: %v %q", err, f.hosts[len(f.hosts)-1])
	}
}

func TestWithoutFleet(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := WithoutFleet(NewHandler(d, nil, "test"))
	for _, tt := range []struct {
		path string
		code int
		want string
	}{
		{"/v2/sa", 200, "[]"},
		{"/v2/sa?host=b", 400, "--host"},
		{"/v2/fleet", 404, "not a fleet host"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("GET %s: %d %s", tt.path, rec.Code, rec.Body.String())
		}
	}
}

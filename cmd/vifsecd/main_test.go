package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
)

// TestLifecycle runs the daemon in process, talks to it, cancels it (as
// SIGTERM does) and checks that it exits 0, removes its socket, and leaves
// no goroutine behind (wireguard-go's goroutineLeakCheck).
func TestLifecycle(t *testing.T) {
	base := runtime.NumGoroutine()
	dir, err := os.MkdirTemp("", "vifsecd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	state := filepath.Join(dir, "state")
	args := []string{"--state", state, "--socket", sock, "--metrics", "127.0.0.1:0", "--log-level", "debug", "--crypto-helpers", "0"}

	ctx, cancel := context.WithCancel(context.Background())
	var logs testutil.LogBuffer
	readyc := make(chan string, 1)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &logs, func(_, m string) { readyc <- m }) }()
	var metricsAddr string
	select {
	case metricsAddr = <-readyc:
	case code := <-done:
		t.Fatalf("exited %d before ready:\n%s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}

	c := api.NewClient(sock)
	if _, err := c.AddTenant(ctx, api.TenantAddRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// Alive, but not ready without an uplink: /readyz says what is missing.
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusServiceUnavailable, "uplink: none configured"},
	} {
		resp, err := http.Get("http://" + metricsAddr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}

	// A second daemon on the same state directory refuses.
	var logs2 testutil.LogBuffer
	if code := run(context.Background(), []string{"--state", state, "--socket", sock + "2", "--metrics", "off"}, &logs2, nil); code != 1 ||
		!strings.Contains(logs2.String(), "in use by another vifsecd") {
		t.Errorf("second daemon: exit %d, log %q", code, logs2.String())
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel, want 0:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket not removed: %v", err)
	}
	if !strings.Contains(logs.String(), "crypto_helpers=0") {
		t.Errorf("no crypto_helpers=0 in the data path's startup log:\n%s", logs.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		// A value a flag refuses is bad input (1, as vifsec's); a command
		// line vifsecd cannot read is a usage error (2).
		{[]string{"--log-level", "loud"}, 1, "--log-level"},
		{[]string{"extra"}, 2, "unexpected argument"},
		{[]string{"--bogus"}, 2, "bogus"},
		{[]string{"--workers"}, 2, "needs an argument"},
		{[]string{"--metrics", ""}, 1, "--metrics off"},
		{[]string{"--log-format", "xml"}, 1, "--log-format"},
		{[]string{"--workers", "many"}, 1, `invalid value "many" for flag -workers: use 0 (one per CPU available) or 1 to 256 workers`},
		{[]string{"--workers", "-1"}, 1, "-workers: use 0"},
		{[]string{"--workers=257"}, 1, "-workers: use 0"},
		{[]string{"--ike-retransmit-tries", "0"}, 1, "--ike-retransmit-tries"},
		{[]string{"--gro=maybe"}, 1, "-gro"},
		{[]string{"--udp-gso=maybe"}, 1, `invalid boolean value "maybe" for -udp-gso: use true or false`},
		{[]string{"--udp-gso", "false"}, 2, `unexpected argument "false"`},
		{[]string{"--crypto-helpers", "some"}, 1, `invalid value "some" for flag -crypto-helpers: use -1 (one per CPU beyond the first), 0 (none: each worker does its own crypto) or a number of helpers`},
		{[]string{"--crypto-helpers=-2"}, 1, `invalid value "-2" for flag -crypto-helpers: use -1`},
		{[]string{"--crypto-helpers", "1.5"}, 1, "-crypto-helpers: use -1"},
		{[]string{"--crypto-helpers"}, 2, "needs an argument"},
		{[]string{"--version"}, 0, "vifsecd "},
	}
	for _, tt := range tests {
		var b testutil.LogBuffer
		if code := run(context.Background(), tt.args, &b, nil); code != tt.code || !strings.Contains(b.String(), tt.msg) {
			t.Errorf("vifsecd %v: exit %d, output %q; want %d mentioning %q", tt.args, code, b.String(), tt.code, tt.msg)
		}
	}
	o, _, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil || o.state != "/var/lib/vifsec" || o.socket != "/run/vifsec/vifsecd.sock" || o.metrics != "127.0.0.1:9483" || o.logLevel != "info" || o.workers != 0 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	if o, _, err := parseFlags([]string{"--workers", "3"}, &bytes.Buffer{}); err != nil || o.workers != 3 {
		t.Errorf("--workers 3: %+v, %v", o, err)
	}
	if n := dataPathWorkers(0); n != runtime.GOMAXPROCS(0) {
		t.Errorf("--workers 0: %d workers, want GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
	if n := dataPathWorkers(5); n != 5 {
		t.Errorf("--workers 5: %d workers", n)
	}
}

// TestUDPGSOFlag: --udp-gso (default true) reaches the data path's
// engine, which with false sends every datagram cut from a guest's TSO
// super-frame as its own frame (internal/datapath TestUDPGSONeedsDevice).
func TestUDPGSOFlag(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		gro, gso bool
	}{
		{nil, true, true},
		{[]string{"--udp-gso=false"}, true, false},
		{[]string{"--udp-gso=0"}, true, false},
		{[]string{"--udp-gso"}, true, true},
		{[]string{"--udp-gso=false", "--udp-gso=true"}, true, true},
		{[]string{"--gro=false", "--udp-gso=false"}, false, false},
	} {
		o, _, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		e := datapath.New(sa.NewDB(0), nil)
		o.dataPath().configure(e)
		if e.UDPGSO() != tc.gso || e.Coalescing() != tc.gro {
			t.Errorf("vifsecd %v: engine UDP GSO %v, coalescing %v; want %v, %v", tc.args, e.UDPGSO(), e.Coalescing(), tc.gso, tc.gro)
		}
		e.Close()
	}
	var b bytes.Buffer
	manPage().Write(&b)
	if !strings.Contains(b.String(), `\-\-udp\-gso`) {
		t.Error("vifsecd(8) does not describe --udp-gso")
	}
}

// TestCryptoHelpersFlag: --crypto-helpers (default -1) reaches the data
// path's engine, which starts that many helpers, at most one per CPU
// beyond the first, and none with 0 (internal/datapath
// TestCryptoHelpersOption).
func TestCryptoHelpersFlag(t *testing.T) {
	prev := runtime.GOMAXPROCS(4)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	for _, tc := range []struct {
		args []string
		n    int // the option
		want int // the engine's helpers
	}{
		{nil, -1, 3},
		{[]string{"--crypto-helpers", "-1"}, -1, 3},
		{[]string{"--crypto-helpers", "0"}, 0, 0},
		{[]string{"--crypto-helpers=2"}, 2, 2},
		{[]string{"--crypto-helpers", "64"}, 64, 3},
		{[]string{"--crypto-helpers", "0", "--crypto-helpers", "1"}, 1, 1},
	} {
		o, _, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.cryptoHelpers != tc.n {
			t.Errorf("vifsecd %v: --crypto-helpers %d, want %d", tc.args, o.cryptoHelpers, tc.n)
		}
		e := datapath.New(sa.NewDB(0), nil)
		o.dataPath().configure(e)
		if runtime.GOOS == "linux" && e.CryptoHelpers() != tc.want {
			t.Errorf("vifsecd %v: engine will start %d crypto helpers, want %d", tc.args, e.CryptoHelpers(), tc.want)
		}
		e.Close()
	}
	var b bytes.Buffer
	manPage().Write(&b)
	if !strings.Contains(b.String(), `\-\-crypto\-helpers`) {
		t.Error("vifsecd(8) does not describe --crypto-helpers")
	}
}

func TestLogFormatJSON(t *testing.T) {
	var b bytes.Buffer
	lv := new(slog.LevelVar)
	newLogger(&b, "json", lv).Info("vifsecd ready", "vms", 3)
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("--log-format json wrote %q: %v", b.String(), err)
	}
	if rec["msg"] != "vifsecd ready" || rec["vms"] != float64(3) || rec["level"] != "INFO" {
		t.Fatalf("record %v", rec)
	}
	b.Reset()
	newLogger(&b, "text", lv).Info("vifsecd ready", "vms", 3)
	if !strings.Contains(b.String(), `msg="vifsecd ready" vms=3`) {
		t.Fatalf("--log-format text wrote %q", b.String())
	}
}

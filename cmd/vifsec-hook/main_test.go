package main

import (
	"bytes"
	"context"
	"github.com/vifsec/vifsec/sa"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/ikeconf"
	apiserver "github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/tenant"
)

// testDaemon serves a real daemon's API (memory store) on a unix socket.
// It has no data path: the VIF status it reports is "attached" for every
// VM, unless setVIF says otherwise.
type testDaemon struct {
	d        *daemon.Daemon
	sock     string
	requests atomic.Int64

	mu  sync.Mutex
	vif map[string]string // VM name → status; "" attached
}

func (td *testDaemon) setVIF(vm, status string) {
	td.mu.Lock()
	defer td.mu.Unlock()
	td.vif[vm] = status
}

func (td *testDaemon) vifStatus() map[string]string {
	td.mu.Lock()
	defer td.mu.Unlock()
	out := map[string]string{}
	for _, v := range td.d.VMs() {
		out[v.Name] = td.vif[v.Name]
	}
	return out
}

func newTestDaemon(t *testing.T, tenants ...string) *testDaemon {
	t.Helper()
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tenants {
		if err := d.AddTenant(tenant.Tenant{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "vh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	td := &testDaemon{d: d, sock: filepath.Join(dir, "s"), vif: map[string]string{}}
	d.SetVIFStatus(td.vifStatus)
	ln, err := net.Listen("unix", td.sock)
	if err != nil {
		t.Fatal(err)
	}
	h := apiserver.NewHandler(d, nil, "test")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		td.requests.Add(1)
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return td
}

func (td *testDaemon) vms() map[string]tenant.VM {
	out := map[string]tenant.VM{}
	for _, v := range td.d.VMs() {
		out[v.Name] = v
	}
	return out
}

func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "libvirt", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hookResult struct {
	code           int
	stdout, stderr string
}

// hookRun runs the hook as libvirt would, against sock.
func hookRun(t *testing.T, sock string, xml []byte, args ...string) hookResult {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--socket", sock, "--syslog=false", "--sysfs", t.TempDir()}, args...)
	code := run(full, bytes.NewReader(xml), &out, &errb)
	if out.Len() != 0 {
		t.Errorf("hook %v wrote to stdout (libvirt reads it as XML at migrate and restore): %q", args, out.String())
	}
	return hookResult{code, out.String(), errb.String()}
}

const probeVM = "vifsec-probe1-525400aabb01"

func TestHookStartStop(t *testing.T) {
	td := newTestDaemon(t, "acme")
	x := corpus(t, "ethernet-reconnect.xml")

	r := hookRun(t, td.sock, x, "vifsec-probe1", "prepare", "begin", "-")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("prepare: %+v", r)
	}
	if len(td.vms()) != 0 {
		t.Fatal("prepare attached something")
	}
	for i := 0; i < 2; i++ { // start, then start again: the same
		r = hookRun(t, td.sock, x, "vifsec-probe1", "start", "begin", "-")
		if r.code != 0 || !strings.Contains(r.stderr, "VM "+probeVM+" attached: tenant acme, dev vnet1, mac 52:54:00:aa:bb:01, vlan 100") {
			t.Fatalf("start %d: %+v", i, r)
		}
	}
	v, ok := td.vms()[probeVM]
	if !ok || v.Dev != "vnet1" || v.VLAN != 100 || v.Tenant != "acme" || v.MAC.String() != "52:54:00:aa:bb:01" ||
		v.Origin != "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72" || len(td.vms()) != 1 {
		t.Fatalf("VMs after start: %+v", td.vms())
	}
	// reconnect with a new device (vnet names are not reused): moved.
	x2 := bytes.Replace(x, []byte("<target dev='vnet1'/>"), []byte("<target dev='vnet7'/>"), 1)
	if r := hookRun(t, td.sock, x2, "vifsec-probe1", "reconnect", "begin", "-"); r.code != 0 {
		t.Fatalf("reconnect: %+v", r)
	}
	if v := td.vms()[probeVM]; v.Dev != "vnet7" {
		t.Fatalf("after reconnect: %+v", v)
	}
	for _, op := range []string{"started", "migrate", "restore"} {
		if r := hookRun(t, td.sock, x2, "vifsec-probe1", op, "begin", "-"); r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: %+v", op, r)
		}
	}
	// stopped detaches (release then finds nothing to do).
	r = hookRun(t, td.sock, x2, "vifsec-probe1", "stopped", "end", "-")
	if r.code != 0 || !strings.Contains(r.stderr, "VM "+probeVM+" detached") || len(td.vms()) != 0 {
		t.Fatalf("stopped: %+v, VMs %v", r, td.vms())
	}
	if r := hookRun(t, td.sock, x2, "vifsec-probe1", "release", "end", "-"); r.code != 0 || r.stderr != "" {
		t.Fatalf("release: %+v", r)
	}
}

func TestHookLeavesOtherDomainsAlone(t *testing.T) {
	td := newTestDaemon(t, "acme")
	for _, x := range [][]byte{corpus(t, "no-metadata.xml"), []byte("<domain><broken"), nil} {
		for _, op := range []string{"prepare", "start", "stopped", "reconnect"} {
			r := hookRun(t, td.sock, x, "plain", op, "begin", "-")
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("%s: %+v", op, r)
			}
		}
	}
	if n := td.requests.Load(); n != 0 {
		t.Fatalf("%d requests to vifsecd for domains without vifsec metadata", n)
	}
}

func TestHookFailModes(t *testing.T) {
	closed := corpus(t, "multi-start.xml") // fail="closed", tenants acme and globex
	closedPrep := corpus(t, "multi-prepare.xml")
	open := corpus(t, "ethernet-reconnect.xml") // fail="open", tenant acme
	gone := filepath.Join(t.TempDir(), "no-daemon.sock")

	t.Run("unreachable", func(t *testing.T) {
		r := hookRun(t, gone, closedPrep, "web2", "prepare", "begin", "-")
		if r.code != exitRefuse || !strings.Contains(r.stderr, `refusing to start domain web2 unprotected (fail="closed"): cannot reach vifsecd at `+gone) {
			t.Fatalf("closed prepare: %+v", r)
		}
		r = hookRun(t, gone, closed, "web2", "start", "begin", "-")
		if r.code != exitRefuse {
			t.Fatalf("closed start: %+v", r)
		}
		r = hookRun(t, gone, open, "vifsec-probe1", "prepare", "begin", "-")
		if r.code != 0 || !strings.Contains(r.stderr, `domain vifsec-probe1 starts unprotected (fail="open"): cannot reach vifsecd`) {
			t.Fatalf("open prepare: %+v", r)
		}
		// Never fatal: a stop, or a reconnect of a running domain.
		for _, op := range []string{"stopped", "release", "reconnect"} {
			if r := hookRun(t, gone, closed, "web2", op, "end", "-"); r.code != 0 || r.stderr == "" {
				t.Fatalf("closed %s: %+v", op, r)
			}
		}
	})

	t.Run("missing tenant", func(t *testing.T) {
		td := newTestDaemon(t, "acme") // no globex
		r := hookRun(t, td.sock, closedPrep, "web2", "prepare", "begin", "-")
		if r.code != exitRefuse || !strings.Contains(r.stderr, `VM web2-mgmt: vifsecd has no tenant "globex"; add it first (vifsec tenant add --tenant globex)`) {
			t.Fatalf("prepare: %+v", r)
		}
		// At start, what was attached is detached again.
		r = hookRun(t, td.sock, closed, "web2", "start", "begin", "-")
		if r.code != exitRefuse || !strings.Contains(r.stderr, "detached again") || len(td.vms()) != 0 {
			t.Fatalf("start: %+v, VMs %v", r, td.vms())
		}
		// fail="open": the rest is attached, the domain starts.
		opened := bytes.Replace(closed, []byte(`fail="closed"`), []byte(`fail="open"`), 1)
		r = hookRun(t, td.sock, opened, "web2", "start", "begin", "-")
		if r.code != 0 || !strings.Contains(r.stderr, `starts unprotected (fail="open")`) || len(td.vms()) != 2 {
			t.Fatalf("open start: %+v, VMs %v", r, td.vms())
		}
	})

	t.Run("malformed", func(t *testing.T) {
		td := newTestDaemon(t, "acme")
		x := corpus(t, "malformed-closed.xml")
		r := hookRun(t, td.sock, x, "broken", "prepare", "begin", "-")
		if r.code != exitRefuse || !strings.Contains(r.stderr, "domain XML: XML syntax error on line 11") {
			t.Fatalf("closed: %+v", r)
		}
		x = bytes.Replace(x, []byte(`fail="closed"`), []byte(`fail="open"`), 1)
		if r := hookRun(t, td.sock, x, "broken", "prepare", "begin", "-"); r.code != 0 || !strings.Contains(r.stderr, "XML syntax error") {
			t.Fatalf("open: %+v", r)
		}
	})

	t.Run("names taken", func(t *testing.T) {
		td := newTestDaemon(t, "acme")
		m, _ := tenant.ParseMAC("52:54:00:aa:bb:01")
		if err := td.d.AttachVM(tenant.VM{Name: probeVM, Tenant: "acme", Dev: "tap0", MAC: m, VLAN: 5}); err != nil {
			t.Fatal(err)
		}
		x := bytes.Replace(open, []byte(`fail="open"`), []byte(`fail="closed"`), 1)
		r := hookRun(t, td.sock, x, "vifsec-probe1", "prepare", "begin", "-")
		if r.code != exitRefuse || !strings.Contains(r.stderr, "the name is taken by a VM attached by an operator (vifsec vm attach)") {
			t.Fatalf("prepare: %+v", r)
		}
		r = hookRun(t, td.sock, x, "vifsec-probe1", "start", "begin", "-")
		if r.code != exitRefuse || td.vms()[probeVM].Dev != "tap0" {
			t.Fatalf("start: %+v; the operator's VM must be left alone: %+v", r, td.vms())
		}
		// Its stop does not detach the operator's VM either.
		hookRun(t, td.sock, x, "vifsec-probe1", "stopped", "end", "-")
		if _, ok := td.vms()[probeVM]; !ok {
			t.Fatal("stopped detached the operator's VM")
		}
	})
}

// TestHookVLANChange: a domain whose XML now gives its interface another
// VLAN is re-attached at start, unless an SA keeps it.
func TestHookVLANChange(t *testing.T) {
	td := newTestDaemon(t, "acme")
	x := corpus(t, "ethernet-reconnect.xml")
	if r := hookRun(t, td.sock, x, "vifsec-probe1", "start", "begin", "-"); r.code != 0 {
		t.Fatal(r)
	}
	x2 := bytes.Replace(x, []byte(`vlan="100"`), []byte(`vlan="101"`), 1)
	if r := hookRun(t, td.sock, x2, "vifsec-probe1", "start", "begin", "-"); r.code != 0 || td.vms()[probeVM].VLAN != 101 {
		t.Fatalf("%+v %+v", r, td.vms())
	}
	c := api.NewClient(td.sock)
	defer c.Close()
	if _, err := c.AddSA(context.Background(), api.SAAddRequest{VM: probeVM, SAName: "s1", SASource: "2001:db8::1", SADestination: "2001:db8::2",
		SAMode: "transport", SASPI: "0x1000", EncryptionAlgorithm: "aes128-gcm",
		EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213", IntegrityAlgorithm: "none"}); err != nil {
		t.Fatal(err)
	}
	x3 := bytes.Replace(x, []byte(`vlan="100"`), []byte(`vlan="102"`), 1)
	x3 = bytes.Replace(x3, []byte(`fail="open"`), []byte(`fail="closed"`), 1)
	r := hookRun(t, td.sock, x3, "vifsec-probe1", "start", "begin", "-")
	if r.code != exitRefuse || !strings.Contains(r.stderr, "it cannot be detached") || !strings.Contains(r.stderr, "SA s1") || td.vms()[probeVM].VLAN != 101 {
		t.Fatalf("%+v %+v", r, td.vms())
	}
	// Stopped: the VM keeps its SA, so it stays (said, not fatal).
	r = hookRun(t, td.sock, x3, "vifsec-probe1", "stopped", "end", "-")
	if r.code != 0 || !strings.Contains(r.stderr, "stays attached for its SAs and SPs") {
		t.Fatalf("%+v", r)
	}
}

func TestHookUsage(t *testing.T) {
	for _, args := range [][]string{{"web1", "start"}, {"--bogus", "a", "b", "c", "d"}, {"install", "extra"}} {
		var out, errb bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errb.String())
		}
	}
	// A domain named "install" is a domain, not the subcommand.
	var out, errb bytes.Buffer
	if code := run([]string{"install", "prepare", "begin", "-"}, strings.NewReader("<domain/>"), &out, &errb); code != 0 || out.Len() != 0 {
		t.Errorf("domain named install: %d %q %q", code, out.String(), errb.String())
	}
}

func TestInstallCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "vifsec-hook")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	var out, errb bytes.Buffer
	args := []string{"install", "--hooks-dir", dir, "--bin", bin, "--socket", "/tmp/x.sock"}
	if code := run(args, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "installed "+filepath.Join(dir, "qemu.d", "vifsec")) {
		t.Fatalf("install: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(args, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "already installed") {
		t.Fatalf("install again: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"uninstall", "--hooks-dir", dir}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "removed") {
		t.Fatalf("uninstall: %d %q", code, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "qemu.d", "vifsec")); !os.IsNotExist(err) {
		t.Fatal("hook file still there")
	}
}

// TestHookPolicy: policy="NAME" requires an IKE policy NAME of the tenant
// that speaks for one of the domain's VMs; with fail="closed" the domain
// does not start without it. A policy may be created before the domain
// first starts (it waits for the VM); the domain's stop detaches the VM
// and leaves the policy waiting for the next start.
func TestHookPolicy(t *testing.T) {
	td := newTestDaemon(t, "acme")
	x := bytes.Replace(corpus(t, "ethernet-reconnect.xml"), []byte(`tenant="acme" fail="open"`), []byte(`tenant="acme" policy="web" fail="closed"`), 1)
	if !bytes.Contains(x, []byte(`policy="web"`)) {
		t.Fatal("corpus file changed: no metadata to edit")
	}
	r := hookRun(t, td.sock, x, "vifsec-probe1", "prepare", "begin", "-")
	if r.code == 0 || !strings.Contains(r.stderr, `policy="web"`) || !strings.Contains(r.stderr, "has no IKE policy web") {
		t.Fatalf("prepare without the policy: %+v", r)
	}
	pol := ikeconf.Policy{
		Tenant: "acme", Name: "web", VM: "other-vm",
		LocalSubnets:  []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")},
		RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		RemoteAddress: netip.MustParseAddr("192.0.2.20"), Mode: sa.ModeTunnel,
		Auth: ikeconf.AuthPSK, PSK: []byte("a lab pre-shared key 0123456789"),
	}
	if _, err := td.d.CreatePolicy(pol); err != nil {
		t.Fatal(err)
	}
	r = hookRun(t, td.sock, x, "vifsec-probe1", "prepare", "begin", "-")
	if r.code == 0 || !strings.Contains(r.stderr, `speaks for VM "other-vm"`) {
		t.Fatalf("prepare with the policy bound elsewhere: %+v", r)
	}
	if err := td.d.DeletePolicy("acme", "web"); err != nil {
		t.Fatal(err)
	}
	pol.VM = probeVM // not attached yet: the policy waits for it
	if _, err := td.d.CreatePolicy(pol); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"prepare", "start"} {
		if r := hookRun(t, td.sock, x, "vifsec-probe1", op, "begin", "-"); r.code != 0 {
			t.Fatalf("%s with the policy: %+v", op, r)
		}
	}
	if _, ok := td.vms()[probeVM]; !ok {
		t.Fatal("VM not attached")
	}
	if r := hookRun(t, td.sock, x, "vifsec-probe1", "stopped", "end", "-"); r.code != 0 || len(td.vms()) != 0 {
		t.Fatalf("stopped: %+v, VMs %v", r, td.vms())
	}
	if ps, _ := td.d.Policies("acme"); len(ps) != 1 {
		t.Fatalf("policy gone with the VM: %+v", ps)
	}
}

// TestInstallUsesInstalledPath: a binary built for installation writes its
// installed path into the hook file, wherever it runs from.
func TestInstallUsesInstalledPath(t *testing.T) {
	dir := t.TempDir()
	sbin := filepath.Join(dir, "sbin")
	os.MkdirAll(sbin, 0o755)
	os.WriteFile(filepath.Join(sbin, "vifsec-hook"), []byte("#!/bin/sh\n"), 0o755)
	old := buildinfo.SbinDir
	buildinfo.SbinDir = sbin
	t.Cleanup(func() { buildinfo.SbinDir = old })
	var out, errb bytes.Buffer
	if code := run([]string{"install", "--hooks-dir", dir}, nil, &out, &errb); code != 0 {
		t.Fatalf("install: %d %q %q", code, out.String(), errb.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "qemu.d", "vifsec"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "exec '" + filepath.Join(sbin, "vifsec-hook") + "'"; !strings.Contains(string(b), want) {
		t.Fatalf("hook file %q does not %s", b, want)
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "vifsec-hook ") {
		t.Fatalf("--version: %d %q %q", code, out.String(), errb.String())
	}
}

// TestHookWaitsForAttach: with fail="closed", start returns only once
// vifsecd reports the VM's interface attached; a refused interface
// (a macvtap: libvirt type='direct') or one not attached before the
// timeout refuses the start and detaches the VM again. fail="open" does
// not wait.
func TestHookWaitsForAttach(t *testing.T) {
	open := corpus(t, "ethernet-reconnect.xml")
	closed := bytes.Replace(open, []byte(`fail="open"`), []byte(`fail="closed"`), 1)
	const refused = "refused: vnet1 is a macvtap (mode bridge): the guest's frames leave it straight for its lower device"

	td := newTestDaemon(t, "acme")
	td.setVIF(probeVM, refused)
	r := hookRun(t, td.sock, closed, "vifsec-probe1", "start", "begin", "-")
	if r.code != exitRefuse || !strings.Contains(r.stderr, "VM "+probeVM+": vifsecd cannot protect interface vnet1: "+refused) ||
		!strings.Contains(r.stderr, "detached again") || len(td.vms()) != 0 {
		t.Fatalf("refused interface, fail=closed: %+v, VMs %v", r, td.vms())
	}
	r = hookRun(t, td.sock, open, "vifsec-probe1", "start", "begin", "-")
	if r.code != 0 || len(td.vms()) != 1 {
		t.Fatalf("refused interface, fail=open: %+v, VMs %v", r, td.vms())
	}
	hookRun(t, td.sock, open, "vifsec-probe1", "stopped", "end", "-")

	td.setVIF(probeVM, "interface is down")
	r = hookRun(t, td.sock, closed, "--timeout", "300ms", "vifsec-probe1", "start", "begin", "-")
	if r.code != exitRefuse || !strings.Contains(r.stderr, "VM "+probeVM+": interface not attached in time (interface is down)") || len(td.vms()) != 0 {
		t.Fatalf("interface never attached, fail=closed: %+v, VMs %v", r, td.vms())
	}

	// Attached a moment after the request: the hook waits for it.
	td.setVIF(probeVM, "describe --dev vnet1: no such interface")
	go func() {
		for len(td.vms()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		td.setVIF(probeVM, "")
	}()
	r = hookRun(t, td.sock, closed, "vifsec-probe1", "start", "begin", "-")
	if r.code != 0 || len(td.vms()) != 1 {
		t.Fatalf("attached late, fail=closed: %+v, VMs %v", r, td.vms())
	}
}

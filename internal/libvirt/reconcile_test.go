package libvirt

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

var _ Host = (*daemon.Daemon)(nil)

const (
	uuidA = "aaaaaaaa-0000-4000-8000-000000000001"
	uuidB = "bbbbbbbb-0000-4000-8000-000000000002"
	uuidC = "cccccccc-0000-4000-8000-000000000003"
	uuidD = "dddddddd-0000-4000-8000-000000000004"
)

// liveDomain is a running domain with one ethernet interface.
func liveDomain(name, uuid, mac, dev, meta string) LiveDomain {
	var r DomainRef
	r.Name, r.ID = name, 1
	u, err := hex.DecodeString(strings.ReplaceAll(uuid, "-", ""))
	if err != nil || len(u) != 16 {
		panic(uuid)
	}
	copy(r.UUID[:], u)
	x := fmt.Sprintf(`<domain type='qemu' id='1'><name>%s</name><uuid>%s</uuid><metadata>%s</metadata>
<devices><interface type='ethernet'><mac address='%s'/><target dev='%s'/></interface></devices></domain>`, name, uuid, meta, mac, dev)
	return LiveDomain{Ref: r, XML: []byte(x)}
}

func acmeMeta(extra string) string {
	return `<vifsec:vm ` + ns + ` tenant="acme">` + extra + `</vifsec:vm>`
}

type reconcileEnv struct {
	t    *testing.T
	d    *daemon.Daemon
	live []LiveDomain
	err  error
	devs map[string]bool
	r    *Reconciler
	log  *bytes.Buffer
}

func newReconcileEnv(t *testing.T) *reconcileEnv {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddTenant(tenant.Tenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	e := &reconcileEnv{t: t, d: d, devs: map[string]bool{}, log: &bytes.Buffer{}}
	e.r = &Reconciler{
		Host:      d,
		List:      func(context.Context) ([]LiveDomain, error) { return e.live, e.err },
		DevExists: func(dev, netns string) bool { return e.devs[dev] },
		SysFS:     t.TempDir(),
		Log:       slog.New(slog.NewTextHandler(e.log, nil)),
	}
	return e
}

func (e *reconcileEnv) once() Report {
	e.t.Helper()
	rep, err := e.r.Once(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func (e *reconcileEnv) vms() map[string]tenant.VM {
	out := map[string]tenant.VM{}
	for _, v := range e.d.VMs() {
		out[v.Name] = v
	}
	return out
}

func (e *reconcileEnv) attach(v tenant.VM) {
	e.t.Helper()
	if err := e.d.AttachVM(v); err != nil {
		e.t.Fatal(err)
	}
}

func sameNames(got []string, want ...string) bool {
	return slices.Equal(got, want) || len(got) == 0 && len(want) == 0
}

func TestReconcile(t *testing.T) {
	e := newReconcileEnv(t)
	nameA := "a-525400000001"

	// An operator's VM, and VMs of domains that no longer run: B's device
	// is gone, C's (a tap of fixed name) still exists.
	e.attach(tenant.VM{Name: "op1", Tenant: "acme", Dev: "tap-op1", MAC: mac("52:54:00:00:00:99")})
	e.attach(tenant.VM{Name: "b-vm", Tenant: "acme", Dev: "vnet9", MAC: mac("52:54:00:00:00:02"), Origin: Origin(uuidB)})
	e.attach(tenant.VM{Name: "c-vm", Tenant: "acme", Dev: "tap-c", MAC: mac("52:54:00:00:00:03"), Origin: Origin(uuidC)})
	e.devs["tap-c"] = true
	e.live = []LiveDomain{
		liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet0", acmeMeta("")),
		liveDomain("plain", uuidD, "52:54:00:00:00:04", "vnet4", ""),
	}
	rep := e.once()
	if !sameNames(rep.Attached, nameA) || !sameNames(rep.Detached, "b-vm") || len(rep.Moved)+len(rep.Kept)+len(rep.Errors) != 0 {
		t.Fatalf("first pass %+v", rep)
	}
	vms := e.vms()
	if a := vms[nameA]; a.Dev != "vnet0" || a.Origin != Origin(uuidA) || a.Tenant != "acme" {
		t.Fatalf("VM a %+v", a)
	}
	if _, ok := vms["op1"]; !ok {
		t.Fatal("operator's VM detached")
	}
	if _, ok := vms["c-vm"]; !ok {
		t.Fatal("VM whose device still exists detached")
	}
	if len(vms) != 3 {
		t.Fatalf("VMs %v", vms)
	}

	// Nothing to do: nothing done.
	gen := e.d.Generation()
	if rep := e.once(); len(rep.Attached)+len(rep.Moved)+len(rep.Detached)+len(rep.Errors) != 0 || e.d.Generation() != gen {
		t.Fatalf("idle pass %+v", rep)
	}

	// A restarted on vnet5: moved.
	e.live[0] = liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet5", acmeMeta(""))
	if rep := e.once(); !sameNames(rep.Moved, nameA) {
		t.Fatalf("restart pass %+v", rep)
	}
	if e.vms()[nameA].Dev != "vnet5" {
		t.Fatal("not moved")
	}

	// A's XML now says VLAN 30: re-attached (nothing uses it).
	e.live[0] = liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet5", acmeMeta(`<vifsec:interface mac="52:54:00:00:00:01" vlan="30"/>`))
	if rep := e.once(); !sameNames(rep.Moved, nameA) || len(rep.Errors) != 0 {
		t.Fatalf("VLAN change pass %+v", rep)
	}
	if e.vms()[nameA].VLAN != 30 {
		t.Fatal("VLAN not changed")
	}
	// With an SA it cannot be: the VM stays as it was, and says why.
	if _, err := e.d.AddSA(nameA, sa.Config{Name: "sa-a", SPI: 0x1000, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		Enc: sa.EncAES128GCM, EncKey: bytes.Repeat([]byte{1}, 20), Integ: sa.IntegNone}); err != nil {
		t.Fatal(err)
	}
	e.live[0] = liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet5", acmeMeta(`<vifsec:interface mac="52:54:00:00:00:01" vlan="31"/>`))
	rep = e.once()
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), "SA sa-a") || e.vms()[nameA].VLAN != 30 {
		t.Fatalf("VLAN change with an SA: %+v", rep)
	}

	// A running domain whose XML is now wrong keeps its VMs.
	e.live[0] = liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet5", `<vifsec:vm `+ns+` tenant="Bad Name"/>`)
	rep = e.once()
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), "domain a:") || len(rep.Detached) != 0 {
		t.Fatalf("broken XML pass %+v", rep)
	}

	// A stops (its device is gone): its VM has an SA, so it stays, said.
	e.live = e.live[1:]
	rep = e.once()
	if !sameNames(rep.Kept, nameA) || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), "stays attached") {
		t.Fatalf("stop with SA %+v", rep)
	}
	if err := e.d.RemoveSA("sa-a"); err != nil {
		t.Fatal(err)
	}
	if rep := e.once(); !sameNames(rep.Detached, nameA) {
		t.Fatalf("stop pass %+v", rep)
	}

	// A running domain that stops protecting an interface: detached even
	// though its device exists.
	e.live = []LiveDomain{liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet6", acmeMeta(""))}
	e.devs["vnet6"] = true
	if rep := e.once(); !sameNames(rep.Attached, nameA) {
		t.Fatalf("%+v", rep)
	}
	e.live = []LiveDomain{liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet6", acmeMeta(`<vifsec:interface mac="52:54:00:00:00:01" protect="no"/>`))}
	if rep := e.once(); !sameNames(rep.Detached, nameA) {
		t.Fatalf("protect=no pass %+v", rep)
	}

	// A VM name taken by an operator's VM is not touched.
	e.live = []LiveDomain{liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet6", acmeMeta(`<vifsec:interface mac="52:54:00:00:00:01" name="op1"/>`))}
	rep = e.once()
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), "an operator") || e.vms()["op1"].Dev != "tap-op1" {
		t.Fatalf("name clash %+v", rep)
	}

	// libvirt unreachable: an error, nothing changed.
	before := e.vms()
	e.err = errors.New("dial unix /run/libvirt/libvirt-sock-ro: connect: no such file or directory")
	e.live = nil
	if _, err := e.r.Once(context.Background()); err == nil {
		t.Fatal("no error")
	}
	if got := e.vms(); len(got) != len(before) {
		t.Fatalf("VMs changed while libvirt was unreachable: %v", got)
	}
}

// TestReconcileLogsOnce: libvirt being away, and each problem, is logged
// once, not at every pass.
func TestReconcileLogsOnce(t *testing.T) {
	e := newReconcileEnv(t)
	e.err = errors.New("no libvirt")
	for range 3 {
		e.r.pass(context.Background(), 0)
	}
	e.err = nil
	e.live = []LiveDomain{liveDomain("a", uuidA, "52:54:00:00:00:01", "vnet0", `<vifsec:vm `+ns+` tenant="nope"/>`)}
	for range 3 {
		e.r.pass(context.Background(), 1<<30)
	}
	out := e.log.String()
	for _, w := range []string{"libvirt not reachable", "libvirt reachable", `no tenant named \"nope\"`} {
		if n := strings.Count(out, w); n != 1 {
			t.Errorf("%q logged %d times:\n%s", w, n, out)
		}
	}
}

//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestIntegrationFleetSeqRestart is TestIntegrationSeqRestart on the fleet
// store: VM web (host b) sends to VM db (host c) with manual SAs whose
// sequence reservations live in etcd. Host b's vifsecd is stopped with
// SIGTERM and started again, then killed with SIGKILL in the middle of a
// ping flood and started again, each time with the same host id and state
// directory. On the wire (captured at host c's uplink, where b's frames
// are received) no (VLAN, SPI, sequence number) of an ESP frame appears
// twice, host c counts no replay drop, and traffic flows after each start.
func TestIntegrationFleetSeqRestart(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	f := newFleetT(t, fmt.Sprintf("vfq%d", os.Getpid()%1000), "7c")
	l, web, db := f.l, f.web, f.db
	gwB := l.Gateway("b")
	f.start(t, bin, gwB)
	C := f.start(t, bin, l.Gateway("c")) // never restarted: the desired state goes through it
	cli := func(args ...string) {
		t.Helper()
		if _, err := C.CLI(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	cli("tenant", "add", "--tenant", "acme")
	for _, vm := range []*VM{web, db} {
		h := vm.Gateway.Name
		cli("--host", h, "uplink", "set", "--dev", vm.Gateway.Uplink)
		cli("--host", h, "vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
			"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String())
	}
	fleetWaitAttached(t, f.ds["b"], "web")
	fleetWaitAttached(t, C, "db")
	if _, err := ConfigureFleetVM(ctx, C, web, db, 0x1000, 0x2000, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ConfigureFleetVM(ctx, C, db, web, 0x2000, 0x1000, nil); err != nil {
		t.Fatal(err)
	}
	caps, capFiles := startFleetCaptures(t, l, "c")

	seqPing(t, web, db, "first run", "-f", "-c", "500")

	// 1. SIGTERM, start.
	if err := f.ds["b"].Stop(); err != nil {
		t.Fatal(err)
	}
	f.start(t, bin, gwB)
	seqPing(t, web, db, "after SIGTERM and start", "-f", "-c", "500")

	// 2. A flood, SIGKILL in its middle, start.
	killed := f.ds["b"]
	stopFlood := seqFloodKill(t, killed, web, db, web.Name, 3000)
	defer stopFlood()
	log, _ := os.ReadFile(killed.Log) // the next start writes over it
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vifsecd b (killed with SIGKILL) log:\n%s", log)
		}
	})
	f.start(t, bin, gwB)
	seqPing(t, web, db, "after SIGKILL and start", "-f", "-c", "500")
	stopFlood()

	for _, c := range caps {
		c.Stop()
	}
	seqCheckWire(t, capFiles, 3000)
	for vm, n := range replayDrops(t, C) {
		if n != 0 {
			t.Errorf("host c dropped %d frames of %s as replays", n, vm)
		}
	}
}

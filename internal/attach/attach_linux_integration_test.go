//go:build linux

package attach

import (
	"context"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/vif"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v %s", args, err, out)
	}
}

// TestIntegrationVIFGoneAndBack removes a VM's interface while frames
// flow into it, and brings it back: the attacher detaches, counts, and
// re-attaches, and nothing leaks.
func TestIntegrationVIFGoneAndBack(t *testing.T) {
	testutil.NeedRoot(t)
	ns := fmt.Sprintf("vat%d", os.Getpid()%100000)
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	mkVIF := func() {
		sh(t, "ip", "-n", ns, "link", "add", "vm0", "type", "veth", "peer", "name", "guest0")
		sh(t, "ip", "-n", ns, "link", "set", "vm0", "up")
		sh(t, "ip", "-n", ns, "link", "set", "guest0", "up")
	}
	mkVIF()
	goroutines := runtime.NumGoroutine()

	e := datapath.New(sa.NewDB(0), nil)
	a := New(e, func(dev, n string, o vif.PacketOptions) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, n, vif.PacketOptions{VnetHdr: o.VnetHdr, Qdisc: o.Qdisc})
		return p, 0, err
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	a.Set([]Want{{Dev: "vm0", Netns: ns, VM: datapath.VM{Name: "vm1", MAC: header.MAC{0x52, 0x54, 0, 0, 0, 1}}}}, nil)
	testutil.WaitUntil(t, "attach", 10*time.Second, func() bool { return a.Status()["vm1"] == "" })

	// Traffic flows (the guest end sends broadcast frames the port reads)
	// while the interface is deleted.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "0.1", "-b", "-I", "guest0", "255.255.255.255").Run()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	sh(t, "ip", "-n", ns, "link", "del", "vm0")
	testutil.WaitUntil(t, "detach", 10*time.Second, func() bool { return a.Detached.Load() == 1 })
	if a.Status()["vm1"] == "" {
		t.Fatal("status still attached after the interface went away")
	}
	close(stop)
	mkVIF()
	testutil.WaitUntil(t, "re-attach", 10*time.Second, func() bool { return a.Status()["vm1"] == "" && a.Reattached.Load() >= 1 })

	cancel()
	<-done
	testutil.WaitUntil(t, "goroutines to end", 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestIntegrationCreateTap: a VM attached with --create-tap gets its tap
// created (persistent, released for the hypervisor) and attached, and the
// tap is deleted when the VM is detached.
func TestIntegrationCreateTap(t *testing.T) {
	testutil.NeedRoot(t)
	ns := fmt.Sprintf("vtap%d", os.Getpid()%100000)
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	e := datapath.New(sa.NewDB(0), nil)
	defer e.Close()
	a := New(e, func(dev, n string, o vif.PacketOptions) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, n, vif.PacketOptions{VnetHdr: o.VnetHdr, Qdisc: o.Qdisc})
		return p, 0, err
	}, nil)
	a.Set([]Want{{Dev: "vmtap0", Netns: ns, CreateTap: true, VM: datapath.VM{Name: "vm1", MAC: header.MAC{0x52, 0x54, 0, 0, 0, 2}}}}, nil)
	if st := a.Status()["vm1"]; st != "" {
		t.Fatalf("vm1 not attached: %s", st)
	}
	info, err := vif.Describe("vmtap0", ns)
	if err != nil || info.Type != "tap" {
		t.Fatalf("Describe vmtap0: %+v, %v; want a tap", info, err)
	}
	a.Set(nil, nil)
	if _, err := vif.Describe("vmtap0", ns); err == nil {
		t.Fatal("tap still exists after the VM was detached")
	}
}

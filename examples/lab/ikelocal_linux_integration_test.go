package lab

import (
	"context"
	"testing"
	"time"
)

// TestIntegrationIKELocalVMs: two VMs on the same hypervisor, each with
// an IKE policy toward the other that vifsec runs on its behalf (one
// initiating, one responding), establish an IKE SA and a transport-mode
// Child SA with each other: their IKE never takes the uplink (it would
// not come back) but goes from one VM's scope to the other's inside
// vifsecd. Both sides show the same SPIs, crossed, and the VMs reach
// each other.
func TestIntegrationIKELocalVMs(t *testing.T) {
	bin := needDemoTools(t)
	l, d := ikeLabT(t, bin, "vil")
	ctx := context.Background()
	a := l.Guest
	b := &VM{Name: "acme-b", Tenant: "acme", Gateway: l.GW, NS: l.Prefix + "v2", Dev: "vm2", MAC: "52:54:00:0a:00:11",
		IP4: IKEGuest4.Next()}
	if err := l.addNS(ctx, b.NS); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{
		{"ip", "link", "add", "eth0", "netns", b.NS, "address", b.MAC, "type", "veth", "peer", "name", b.Dev, "netns", l.GW.NS},
		{"ip", "-n", b.NS, "link", "set", "lo", "up"},
		{"ip", "-n", b.NS, "addr", "add", b.IP4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", b.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", l.GW.NS, "link", "set", b.Dev, "up"},
	} {
		if err := run(ctx, s...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CLI(ctx, "vm", "attach", "--vm", b.Name, "--tenant", "acme", "--dev", b.Dev, "--mac", b.MAC, "--ip", b.IP4.String()); err != nil {
		t.Fatal(err)
	}
	create := func(local, remote *VM, name string, initiate bool) {
		args := []string{"policy", "create", "--tenant", "acme", "--name", name, "--vm", local.Name,
			"--local-ip-subnets", local.IP4.String() + "/32", "--remote-ip-subnets", remote.IP4.String() + "/32",
			"--mode", "transport", "--auth-method", "PSK"}
		if initiate {
			args = append(args, "--remote-address", remote.IP4.String())
		}
		if _, err := d.CLIStdin(ctx, ikeLabPSK+"\n", args...); err != nil {
			t.Fatal(err)
		}
	}
	create(b, a, "ba", false) // the responder first
	create(a, b, "ab", true)
	ca, cb := ike2WaitChild(t, d, "acme", "ab", 20*time.Second), ike2WaitChild(t, d, "acme", "ba", 20*time.Second)
	t.Logf("a in %s out %s; b in %s out %s", ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
	if ca.InboundSPI != cb.OutboundSPI || ca.OutboundSPI != cb.InboundSPI {
		t.Errorf("SPIs not crossed: a in %s out %s, b in %s out %s", ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
	}
	var up int
	for _, s := range ike2IKESAs(t, d, "acme") {
		if (s.Policy == "ab" || s.Policy == "ba") && s.State == "ESTABLISHED" {
			up++
		}
	}
	if up != 2 {
		t.Errorf("%d established IKE SAs for the two VMs' policies, want one on each side: %+v", up, ike2IKESAs(t, d, "acme"))
	}
	if out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.IP4.String()); err != nil {
		t.Fatalf("ping from a to b: %v\n%s", err, out)
	}
}

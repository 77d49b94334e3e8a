//go:build linux

package datapath_test

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"os/exec"
	"strings"

	"github.com/vifsec/vifsec/examples/lab"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// TestIntegrationIKEPuntInject runs IKE on a guest's behalf through real
// AF_PACKET ports in the IKE lab's namespaces (examples/lab.BuildIKE): a
// UDP socket on the peer host sends IKE to the guest's address on ports 500
// and 4500 (behind the non-ESP marker), over IPv4 and IPv6; the engine's
// IKE handler gets each message and the guest's own socket on that port
// gets nothing; SendIKE answers from the guest's MAC and address, and the
// peer's socket receives the answer from the guest's address and port.
// The peer's receive checksum offload is off, so its kernel verifies the
// IPv4 and UDP checksums SendIKE wrote.
//
// The topology is examples/lab.BuildIKE's without the peer's protected
// subnet (a dummy device, which these kernels lack):
//
//	guest ns: eth0 192.0.2.10 2001:db8:1::10 ──veth── vm1 │ gw ns │ up0 ──veth── eth0 192.0.2.20 2001:db8:1::20: peer ns
func TestIntegrationIKEPuntInject(t *testing.T) {
	testutil.NeedRoot(t, "ip", "ethtool", "ping")
	l := ikeLab(t, fmt.Sprintf("vik%d", os.Getpid()%10000))

	e, got, scope := ikeLabEngine(t, l)
	const name = "acme-a"
	msg := append([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}, bytes.Repeat([]byte("IKE_SA_INIT "), 10)...)
	for _, tc := range []struct {
		name         string
		guest, peer  netip.Addr
		port         uint16
		markerOnWire []byte
	}{
		{"v4/500", lab.IKEGuest4, lab.IKEPeer4, 500, nil},
		{"v4/4500", lab.IKEGuest4, lab.IKEPeer4, 4500, []byte{0, 0, 0, 0}},
		{"v6/500", lab.IKEGuest6, lab.IKEPeer6, 500, nil},
		{"v6/4500", lab.IKEGuest6, lab.IKEPeer6, 4500, []byte{0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := netip.AddrPortFrom(tc.guest, tc.port), netip.AddrPortFrom(tc.peer, tc.port)
			peer := listenIn(t, l.peer, remote)
			guest := listenIn(t, l.guest, local) // must stay silent
			wire := append(append([]byte(nil), tc.markerOnWire...), msg...)
			// The first datagram may wait for ARP/ND (answered by the
			// guest through vifsec); send until the handler has it.
			var p datapath.IKEPacket
			deadline := time.Now().Add(10 * time.Second)
		wait:
			for {
				if _, err := peer.WriteToUDPAddrPort(wire, local); err != nil {
					t.Fatal(err)
				}
				select {
				case p = <-got:
					if p.Local != local || p.Remote != remote {
						// A late copy of an earlier case's datagram,
						// sent again while ARP/ND ran on a busy machine.
						continue
					}
					break wait
				case <-time.After(300 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("the IKE handler got nothing")
				}
			}
			if p.VM != name || p.Scope != scope || p.Local != local || p.Remote != remote || !bytes.Equal(p.Data, msg) {
				t.Fatalf("handler got %+v, want %v <- %v with the message (no marker)", p, local, remote)
			}
			reply := append([]byte("reply to "), msg...)
			if err := e.SendIKE(datapath.IKEPacket{VM: name, Scope: scope, Local: local, Remote: remote, Data: reply}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("peer received nothing: %v", err)
			}
			want := append(append([]byte(nil), tc.markerOnWire...), reply...)
			if from != local || !bytes.Equal(buf[:n], want) {
				t.Fatalf("peer got %x from %v, want %x from %v", buf[:n], from, want, local)
			}
			guest.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, from, err := guest.ReadFromUDPAddrPort(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the guest's socket got %x from %v (%v): IKE on its behalf must not reach it", buf[:n], from, err)
			}
		})
	}
	st := e.Stats(name)
	if st.IKEIn.Load() < 4 || st.IKEOut.Load() != 4 {
		t.Errorf("IKEIn %d, IKEOut %d", st.IKEIn.Load(), st.IKEOut.Load())
	}
}

// TestIntegrationIKEInitiate: the gateway initiates IKE for a guest that
// has sent nothing, toward a peer on the guest's link that has never
// heard of it, with no neighbour table anywhere: SendIKE resolves the
// peer's address itself (an ARP request over IPv4, a Neighbor
// Solicitation over IPv6, from the guest's MAC and address), and the
// datagram that waited for the answer reaches the peer's socket, from the
// guest's address; the next one goes at once. The guest's own socket gets
// nothing, and its stack ignores the answer it did not ask for.
func TestIntegrationIKEInitiate(t *testing.T) {
	testutil.NeedRoot(t, "ip", "ethtool", "ping")
	l := ikeLab(t, fmt.Sprintf("vii%d", os.Getpid()%10000))
	e, _, scope := ikeLabEngine(t, l)
	for _, tc := range []struct {
		name         string
		guest, peer  netip.Addr
		port         uint16
		markerOnWire []byte
	}{
		{"v4/500", lab.IKEGuest4, lab.IKEPeer4, 500, nil},
		{"v6/4500", lab.IKEGuest6, lab.IKEPeer6, 4500, []byte{0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := netip.AddrPortFrom(tc.guest, tc.port), netip.AddrPortFrom(tc.peer, tc.port)
			peer := listenIn(t, l.peer, remote)
			guest := listenIn(t, l.guest, local)
			if out, err := exec.Command("ip", "-n", l.peer, "neigh", "show", "to", tc.guest.String()).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
				t.Fatalf("the peer knows the guest already (%v): %s", err, out)
			}
			buf := make([]byte, 2048)
			for i, msg := range []string{"IKE_SA_INIT request", "IKE_AUTH request"} {
				start := time.Now()
				if err := e.SendIKE(datapath.IKEPacket{Scope: scope, Local: local, Remote: remote, Data: []byte(msg)}); err != nil {
					t.Fatalf("SendIKE %d: %v", i, err)
				}
				peer.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("message %d: the peer received nothing: %v", i, err)
				}
				want := append(append([]byte(nil), tc.markerOnWire...), msg...)
				if from != local || !bytes.Equal(buf[:n], want) {
					t.Fatalf("peer got %x from %v, want %x from %v", buf[:n], from, want, local)
				}
				t.Logf("message %d arrived after %v", i, time.Since(start).Round(time.Microsecond))
			}
			guest.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, from, err := guest.ReadFromUDPAddrPort(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the guest's socket got %x from %v (%v)", buf[:n], from, err)
			}
		})
	}
	st := e.Stats("acme-a")
	if st.NeighRequests.Load() != 2 || st.NeighLearned.Load() != 2 || st.IKEOut.Load() != 4 {
		t.Errorf("NeighRequests %d, NeighLearned %d, IKEOut %d; want 2, 2, 4",
			st.NeighRequests.Load(), st.NeighLearned.Load(), st.IKEOut.Load())
	}
}

// ikeLabEngine starts a data path in l's gateway namespace: the guest's
// VIF (with virtio-net headers) as VM "acme-a" with IKE on its behalf, and
// the uplink; IKE for the guest arrives on the returned channel.
func ikeLabEngine(t *testing.T, l ikeNamespaces) (*datapath.Engine, chan datapath.IKEPacket, sa.Scope) {
	t.Helper()
	e := datapath.New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	got := make(chan datapath.IKEPacket, 16)
	e.SetIKEHandler(func(p datapath.IKEPacket) { got <- p })
	port, err := vif.OpenPacketWith("vm1", l.gw, vif.PacketOptions{VnetHdr: true, Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	up, err := vif.OpenPacketWith("up0", l.gw, vif.PacketOptions{Queues: 2})
	if err != nil {
		port.Close()
		t.Fatal(err)
	}
	mac, _ := tenant.ParseMAC(lab.IKEGuestMAC)
	e.Update([]datapath.VM{{Name: "acme-a", Port: port, MAC: header.MAC(mac), IPs: []netip.Addr{lab.IKEGuest4, lab.IKEGuest6},
		DefaultAction: tenant.ActionNone, VnetHdr: true, IKE: true}})
	e.SetUplink(up, 0)
	return e, got, sa.Scope{MAC: header.MAC(mac)}
}

// listenIn opens a UDP socket on at in namespace ns, closed at cleanup.
func listenIn(t *testing.T, ns string, at netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := lab.InNS(ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ikeNamespaces are the three namespaces of ikeLab.
type ikeNamespaces struct{ gw, guest, peer string }

// ikeLab builds the topology described at TestIntegrationIKEPuntInject
// with namespace names starting with prefix; t.Cleanup removes them.
func ikeLab(t *testing.T, prefix string) ikeNamespaces {
	t.Helper()
	l := ikeNamespaces{gw: prefix + "gw", guest: prefix + "vm", peer: prefix + "sw"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	for _, ns := range []string{l.gw, l.guest, l.peer} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		})
	}
	for _, s := range [][]string{
		{"ip", "netns", "exec", l.gw, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", l.gw, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "link", "add", "eth0", "netns", l.guest, "address", lab.IKEGuestMAC, "type", "veth", "peer", "name", "vm1", "netns", l.gw},
		{"ip", "link", "add", "eth0", "netns", l.peer, "type", "veth", "peer", "name", "up0", "netns", l.gw},
		{"ip", "-n", l.guest, "addr", "add", lab.IKEGuest4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", l.guest, "addr", "add", lab.IKEGuest6.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", l.guest, "link", "set", "eth0", "up"},
		{"ip", "-n", l.peer, "addr", "add", lab.IKEPeer4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", l.peer, "addr", "add", lab.IKEPeer6.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", l.peer, "link", "set", "eth0", "up"},
		{"ip", "-n", l.gw, "link", "set", "vm1", "up"},
		{"ip", "-n", l.gw, "link", "set", "up0", "up"},
		// The wire is ours: frames must be whole and checksummed, and the
		// peer's kernel checks the checksums of what vifsec writes.
		{"ip", "netns", "exec", l.gw, "ethtool", "-K", "up0", "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", l.peer, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", "rx", "off"},
	} {
		run(s...)
	}
	return l
}

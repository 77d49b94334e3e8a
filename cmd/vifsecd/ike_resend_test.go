package main

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike"
)

// A datagram that could not go yet is tried again within milliseconds,
// not after a fixed wait: a VM that arrives on a host (a move) has its
// IKE_SA_INIT sent as soon as the data path knows it, which is what its
// traffic waits for.
func TestSendRetriesSoon(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	peer, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c500, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c500.Close()
	g := &ikeGlue{log: slog.New(slog.DiscardHandler)}
	start := time.Now()
	g.send(ike.Packet{Local: netip.AddrPortFrom(lo, ike500), Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Data: []byte("IKE_SA_INIT request")})
	time.Sleep(20 * time.Millisecond) // the state arrives a moment later
	g.mu.Lock()
	g.under = &underlaySockets{at: underlayAt{addr: lo}, c500: c500}
	g.mu.Unlock()
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("never sent: %v", err)
	}
	el := time.Since(start)
	if string(buf[:n]) != "IKE_SA_INIT request" {
		t.Errorf("got %q", buf[:n])
	}
	// Tries at 5, 15, 35 ms: sent at the third, about 15 ms after the
	// sockets opened. Allow for a loaded machine, but not a fixed 200 ms.
	if el > 150*time.Millisecond {
		t.Errorf("sent %v after the first try, %v after the sockets opened; want within tens of milliseconds", el, el-20*time.Millisecond)
	}
	t.Logf("sent %v after the first try (sockets opened after 20ms)", el.Round(time.Millisecond))
}

package main

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike"
)

// The engine initiates as soon as an underlay policy is created, and the
// glue opens the underlay sockets when it sees the same change, a moment
// later: a datagram sent in between is sent once the sockets are open,
// not lost to the engine's retransmission seconds later.
func TestUnderlaySendWaitsForSockets(t *testing.T) {
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
	data := []byte("IKE_SA_INIT request")
	start := time.Now()
	g.send(ike.Packet{Local: netip.AddrPortFrom(lo, ike500), Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Data: data})
	copy(data, "reused by the engine") // the glue must have kept its own copy
	g.mu.Lock()
	g.under = &underlaySockets{at: underlayAt{addr: lo}, c500: c500}
	g.mu.Unlock()

	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, from, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the datagram sent before the sockets opened never came: %v", err)
	}
	if string(buf[:n]) != "IKE_SA_INIT request" || from.AddrPort() != c500.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("got %q from %v, want the original datagram from the underlay socket %v", buf[:n], from, c500.LocalAddr())
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("sent after %v; the retry is due after %v", el, ikeResendAfter)
	}
	// One retry only: from an address that stays closed, nothing is sent.
	g.send(ike.Packet{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), ike500), Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Data: []byte("x")})
	peer.SetReadDeadline(time.Now().Add(2 * ikeResendAfter))
	if n, _, err := peer.ReadFromUDP(buf); err == nil {
		t.Errorf("sent %q from an underlay address that is not open", buf[:n])
	}
}

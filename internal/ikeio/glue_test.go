package ikeio

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike"
)

// underlaySendEarly has the glue send an IKE datagram from the underlay
// address before its sockets are open (engine and glue see a new policy
// at about the same moment), overwrites the engine's buffer, opens the
// sockets after openAfter, and returns what the peer got, from where, and
// how long after the send.
func underlaySendEarly(t *testing.T, openAfter time.Duration) (g *Glue, peer, c500 *net.UDPConn, got string, from netip.AddrPort, el time.Duration) {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	var err error
	if peer, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if c500, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c500.Close() })
	g = &Glue{log: slog.New(slog.DiscardHandler)}
	data := []byte("IKE_SA_INIT request")
	start := time.Now()
	g.send(ike.Packet{Local: netip.AddrPortFrom(lo, ike500), Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Data: data})
	copy(data, "reused by the engine") // the glue must have kept its own copy
	time.Sleep(openAfter)
	g.mu.Lock()
	g.under = &underlaySockets{at: underlayAt{addr: lo}, c500: c500}
	g.mu.Unlock()
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, fromUDP, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the datagram sent before the sockets opened never came: %v", err)
	}
	return g, peer, c500, string(buf[:n]), fromUDP.AddrPort(), time.Since(start)
}

// The engine initiates as soon as an underlay policy is created, and the
// glue opens the underlay sockets when it sees the same change, a moment
// later: a datagram sent in between is sent once the sockets are open,
// not lost to the engine's retransmission seconds later.
func TestUnderlaySendWaitsForSockets(t *testing.T) {
	g, peer, c500, got, from, el := underlaySendEarly(t, 0)
	if got != "IKE_SA_INIT request" || from != c500.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("got %q from %v, want the original datagram from the underlay socket %v", got, from, c500.LocalAddr())
	}
	if el > time.Second {
		t.Errorf("sent after %v; the retry is due after %v", el, ikeResendAfter)
	}
	buf := make([]byte, 64)
	// The retries end: from an address that stays closed, nothing is sent.
	g.send(ike.Packet{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), ike500), Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Data: []byte("x")})
	peer.SetReadDeadline(time.Now().Add(2 * ikeResendAfter))
	if n, _, err := peer.ReadFromUDP(buf); err == nil {
		t.Errorf("sent %q from an underlay address that is not open", buf[:n])
	}
}

// A datagram that could not go yet is tried again within milliseconds,
// not after a fixed wait: a VM that arrives on a host (a move) has its
// IKE_SA_INIT sent as soon as the data path knows it, which is what its
// traffic waits for.
func TestSendRetriesSoon(t *testing.T) {
	_, _, _, got, _, el := underlaySendEarly(t, 20*time.Millisecond)
	if got != "IKE_SA_INIT request" {
		t.Errorf("got %q", got)
	}
	// Tries at 5, 15, 35 ms: sent at the third, about 15 ms after the
	// sockets opened. Allow for a loaded machine, but not a fixed 200 ms.
	if el > 150*time.Millisecond {
		t.Errorf("sent %v after the first try, %v after the sockets opened; want within tens of milliseconds", el, el-20*time.Millisecond)
	}
	t.Logf("sent %v after the first try (sockets opened after 20ms)", el.Round(time.Millisecond))
}

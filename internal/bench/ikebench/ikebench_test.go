package ikebench

import (
	"slices"
	"testing"

	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// The benchmark's own checks: every setup completes and is counted, over
// each network, for each suite; small numbers keep it fast.

func TestSetupsInMemory(t *testing.T) {
	bytes := map[string]float64{}
	for _, s := range Suites {
		r, err := Setups(InMemory(), s, 40, 8)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if r.N != 40 || r.Elapsed <= 0 || r.PerSecond() <= 0 || r.Retransmits != 0 {
			t.Errorf("%s: %+v", s.Name, r)
		}
		bytes[s.Name] = r.BytesPerSetup()
	}
	// The ML-KEM-768 exchange adds its encapsulation key (1184 bytes) and
	// ciphertext (1088) to what goes on the wire, and little more.
	if d := bytes["x25519-mlkem768-psk"] - bytes["x25519-psk"]; d < 1184+1088 || d > 1184+1088+300 || bytes["x25519-psk"] < 500 {
		t.Errorf("bytes per setup: %v", bytes)
	}
}

// TestSetupsFromOneSource runs as many setups in flight as make bench-ike
// does (64), all from one source address: none may meet the responder's
// half-open limits (a cookie challenge or a dropped IKE_SA_INIT shows as
// a retransmission).
func TestSetupsFromOneSource(t *testing.T) {
	r, err := Setups(InMemory(), Suites[0], 200, 64)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 200 || r.Retransmits != 0 {
		t.Errorf("200 setups, 64 in flight: %d done, %d retransmissions; want all, none", r.N, r.Retransmits)
	}
}

func TestSetupsLoopback(t *testing.T) {
	nw, err := Loopback()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Setups(nw, Suites[0], 40, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r.Network != "loopback UDP" || r.N != 40 {
		t.Errorf("%+v", r)
	}
	// The sockets are closed: the same port is free again.
	if _, err := Setups(nw, Suites[0], 4, 4); err != nil {
		t.Fatalf("second run on the same port: %v", err)
	}
}

func TestMemory(t *testing.T) {
	m, err := Memory(Suites[0], 200, 16)
	if err != nil {
		t.Fatal(err)
	}
	// Sanity bounds, not a goal: an IKE SA end holds keys, a cached
	// response and timers (a few KiB), a policy a few hundred bytes.
	if m.PerSA() < 512 || m.PerSA() > 64<<10 || m.PolicyBytes < 64 || m.PolicyBytes > 16<<10 {
		t.Errorf("implausible: %+v (per SA %.0f)", m, m.PerSA())
	}
}

func TestGate(t *testing.T) {
	pkt := func(spi uint64, exch wire.ExchangeType, id uint32) ike.Packet {
		h := wire.Header{SPIi: spi, Version: wire.Version2, Exchange: exch, Flags: wire.FlagInitiator, MessageID: id, Length: wire.HeaderLen}
		return ike.Packet{Data: wire.AppendHeader(nil, h)}
	}
	var sent []reqKey
	g := &gate{send: func(p ike.Packet) error { k, _ := request(p.Data); sent = append(sent, k); return nil }, credit: 1, seen: map[reqKey]bool{}}
	init := func(spi uint64) reqKey { return reqKey{spi, wire.ExchangeIKESAInit, 0} }
	g.Send(pkt(1, wire.ExchangeIKESAInit, 0))
	g.Send(pkt(2, wire.ExchangeIKESAInit, 0))
	g.Send(pkt(3, wire.ExchangeIKESAInit, 0))
	g.Send(pkt(2, wire.ExchangeIKESAInit, 0)) // held: dropped
	g.Send(pkt(1, wire.ExchangeIKESAInit, 0)) // out already: a retransmission
	if want := []reqKey{init(1), init(1)}; !slices.Equal(sent, want) || g.retransmits != 1 || len(g.held) != 2 {
		t.Fatalf("sent %v, %d retransmits, %d held", sent, g.retransmits, len(g.held))
	}
	g.Send(pkt(1, wire.ExchangeIKEAuth, 1)) // not gated
	g.release()
	g.release()
	g.release() // nothing held: credit for the next
	g.Send(pkt(4, wire.ExchangeIKESAInit, 0))
	g.Send(pkt(5, wire.ExchangeIKESAInit, 0))
	want := []reqKey{init(1), init(1), {1, wire.ExchangeIKEAuth, 1}, init(2), init(3), init(4)}
	if !slices.Equal(sent, want) || g.retransmits != 1 || len(g.held) != 1 {
		t.Fatalf("sent %v (want %v), %d retransmits, %d held", sent, want, g.retransmits, len(g.held))
	}
	// Responses pass untouched.
	r := pkt(9, wire.ExchangeIKESAInit, 0)
	r.Data[19] |= wire.FlagResponse
	g.Send(r)
	if len(sent) != 7 {
		t.Fatal("a response was held")
	}
}

package ike

import (
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Additional key exchanges (RFC 9370) in IKE_INTERMEDIATE (RFC 9242).

func TestAddKEEstablish(t *testing.T) {
	for _, tc := range []struct {
		name, ike, want string
		fragSize        int
		inter, frags    bool // IKE_INTERMEDIATE exchanges; fragmented
	}{
		{"x25519+mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "curve25519+mlkem768", 0, true, false}, // 1184-byte key: fits 1280
		{"ecp384+mlkem1024", "aes256-sha384-ecp384-ke1_mlkem1024", "ecp384+mlkem1024", 0, true, true},
		{"ecp384+mlkem1024 unfragmented", "aes256-sha384-ecp384-ke1_mlkem1024", "ecp384+mlkem1024", 9000, true, false},
		{"three exchanges", "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke3_ecp256", "curve25519+mlkem768+ecp256", 0, true, false},
		{"none", "aes128gcm16-prfsha256-x25519", "curve25519", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := pskPair()
			pa.IKE, pb.IKE = mustIKE(t, tc.ike), mustIKE(t, tc.ike)
			cfg := &Config{FragmentSize: tc.fragSize}
			n, a, b := establish(t, pa, pb, cfg, cfg)
			wantUp(t, a, b, 1)
			for _, nd := range []*node{a, b} {
				in := nd.established()[0]
				if in.KeyExchanges != tc.want {
					t.Errorf("%s: key exchanges %q, want %q", nd.name, in.KeyExchanges, tc.want)
				}
			}
			if got := countSent(n, addrA, byte(wire.ExchangeIntermediate)) > 0; got != tc.inter {
				t.Errorf("IKE_INTERMEDIATE sent: %v, want %v", got, tc.inter)
			}
			frag := false
			for _, p := range n.sent {
				if p.Data[18] == byte(wire.ExchangeIntermediate) && p.Data[16] == byte(wire.PayloadSKF) {
					frag = true
				}
				if p.Data[16] == byte(wire.PayloadSKF) && len(p.Data)+28 > 1280 {
					t.Fatalf("fragment of %d bytes", len(p.Data))
				}
			}
			if frag != tc.frags {
				t.Errorf("IKE_INTERMEDIATE fragmented: %v, want %v", frag, tc.frags)
			}
		})
	}
}

func TestAddKENegotiation(t *testing.T) {
	const (
		classic  = "aes256gcm16-prfsha384-x25519"
		required = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
		optional = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"
	)
	for _, tc := range []struct {
		name, a, b string
		want       string // key exchanges; "" for no SA
	}{
		{"initiator requires, responder classic", required, classic, ""},
		{"initiator classic, responder requires", classic, required, ""},
		{"initiator optional, responder classic", optional, classic, "curve25519"},
		{"initiator classic, responder optional", classic, optional, "curve25519"},
		{"initiator requires, responder optional", required, optional, "curve25519+mlkem768"},
		{"initiator optional, responder requires", optional, required, "curve25519+mlkem768"},
		{"both optional", optional, optional, "curve25519+mlkem768"},
		{"other method", required, "aes256gcm16-prfsha384-x25519-ke1_mlkem1024", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := pskPair()
			pa.IKE, pb.IKE = mustIKE(t, tc.a), mustIKE(t, tc.b)
			n, a, b := establish(t, pa, pb, nil, nil)
			if tc.want == "" {
				if len(a.established()) != 0 || len(b.established()) != 0 {
					t.Fatalf("established: a %+v b %+v", a.e.IKESAs(), b.e.IKESAs())
				}
				if countSent(n, addrA, byte(wire.ExchangeIntermediate)) != 0 {
					t.Fatal("IKE_INTERMEDIATE sent without agreement")
				}
				return
			}
			wantUp(t, a, b, 1)
			if got := a.established()[0].KeyExchanges; got != tc.want {
				t.Fatalf("key exchanges %q, want %q", got, tc.want)
			}
			if got := b.established()[0].KeyExchanges; got != tc.want {
				t.Fatalf("responder: key exchanges %q, want %q", got, tc.want)
			}
		})
	}
}

// A lost IKE_INTERMEDIATE answer: the initiator retransmits its request,
// which the responder (already on the new keys) must still recognise and
// answer from its cache.
func TestAddKERetransmit(t *testing.T) {
	for _, what := range []string{"request", "response"} {
		t.Run(what, func(t *testing.T) {
			pa, pb := pskPair()
			pa.IKE = mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
			pb.IKE = pa.IKE
			n := newNet(t)
			a := n.add("a", "192.0.2.1", &Config{FragmentSize: 9000})
			b := n.add("b", "192.0.2.2", &Config{FragmentSize: 9000})
			dropped := false
			n.filter = func(p *Packet) bool {
				resp := p.Data[19]&wire.FlagResponse != 0
				if !dropped && p.Data[18] == byte(wire.ExchangeIntermediate) && resp == (what == "response") {
					dropped = true
					return false
				}
				return true
			}
			b.e.SetPolicies([]Policy{pb})
			a.e.SetPolicies([]Policy{pa})
			n.pump()
			if !dropped || len(a.established()) != 0 {
				t.Fatalf("dropped %v, established %d", dropped, len(a.established()))
			}
			n.advance(5 * time.Second)
			wantUp(t, a, b, 1)
			if got := countSent(n, addrB, byte(wire.ExchangeIntermediate)); got != 2 && what == "response" {
				t.Fatalf("responder sent %d IKE_INTERMEDIATE answers, want 2 (one from its cache)", got)
			}
		})
	}
}

// The IntAuth chain binds the IKE_INTERMEDIATE messages into AUTH: an
// initiator whose chain differs from the responder's is refused.
func TestAddKEIntAuthBinds(t *testing.T) {
	pa, pb := pskPair()
	pa.IKE = mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	pb.IKE = pa.IKE
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	b := n.add("b", "192.0.2.2", nil)
	n.filter = func(p *Packet) bool {
		if p.Data[18] == byte(wire.ExchangeIKEAuth) && p.Data[19]&wire.FlagResponse == 0 {
			// What an attacker who could rewrite an intermediate
			// message would achieve: the chains disagree.
			for _, s := range b.e.sas {
				if len(s.intI) > 0 {
					s.intI[0] ^= 1
				}
			}
		}
		return true
	}
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	if len(b.established()) != 0 {
		t.Fatal("responder accepted an AUTH over another IntAuth chain")
	}
}

// An IKE SA made with additional key exchanges is rekeyed with them:
// CREATE_CHILD_SA, then IKE_FOLLOWUP_KE (RFC 9370 §2.2.4).
func TestAddKERekey(t *testing.T) {
	pa, pb := pskPair()
	pa.IKE = mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	pb.IKE = pa.IKE
	n, a, b := establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	if a.e.RekeyIKE("acme", "p1") != 1 {
		t.Fatal("no rekey started")
	}
	n.pump()
	n.advance(time.Second)
	wantUp(t, a, b, 1)
	if got := a.established()[0].KeyExchanges; got != "curve25519+mlkem768" {
		t.Fatalf("rekeyed SA: key exchanges %q", got)
	}
}

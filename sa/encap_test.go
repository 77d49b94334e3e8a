package sa

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func encapConfig() Config {
	return Config{Name: "nat", SPI: 0x1000, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("203.0.113.9"),
		Mode: ModeTunnel, Enc: EncAES128GCM, EncKey: make([]byte, 20), Integ: IntegNone,
		Encap: &UDPEncap{SrcPort: 4500, DstPort: 31337}}
}

// TestUDPEncapConfig: Validate checks the ports, the SA keeps its own copy
// (the caller's Config may change after New), Overhead counts the UDP
// header, and the field round-trips through JSON (and is absent without it,
// so stored SAs from before it read back unchanged).
func TestUDPEncapConfig(t *testing.T) {
	for _, e := range []*UDPEncap{{0, 4500}, {4500, 0}} {
		c := encapConfig()
		c.Encap = e
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "encap: ") {
			t.Errorf("ports %d -> %d: %v, want an encap: error", e.SrcPort, e.DstPort, err)
		}
	}
	c := encapConfig()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Encap.DstPort = 1
	if e, ok := s.Encap(); !ok || e != (UDPEncap{4500, 31337}) || s.Config().Encap.DstPort != 31337 {
		t.Fatalf("Encap() = %+v, %v after the caller changed its copy", e, ok)
	}
	s.Config().Encap.SrcPort = 9 // a copy: changes nothing
	if e, _ := s.Encap(); e.SrcPort != 4500 || s.Config().Encap.SrcPort != 4500 {
		t.Fatal("Config() shares Encap with the SA")
	}
	plain := encapConfig()
	plain.Encap = nil
	p, _ := New(plain)
	if _, ok := p.Encap(); ok || s.Overhead() != p.Overhead()+8 {
		t.Fatalf("Overhead %d with UDP, %d without", s.Overhead(), p.Overhead())
	}
	b, _ := json.Marshal(s.ConfigWithKeys())
	if !strings.Contains(string(b), `"encap":{"src_port":4500,"dst_port":31337}`) {
		t.Fatalf("JSON %s", b)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back.Encap == nil || *back.Encap != (UDPEncap{4500, 31337}) {
		t.Fatalf("JSON round trip: %+v, %v", back.Encap, err)
	}
	b, _ = json.Marshal(p.ConfigWithKeys())
	if strings.Contains(string(b), "encap") {
		t.Fatalf("JSON without Encap mentions it: %s", b)
	}
}

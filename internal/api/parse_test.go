package api

import (
	"encoding/json"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"strings"
	"testing"
)

func TestParseSPI(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		err  string
	}{
		{"0x1000", 0x1000, ""},
		{"0X1000", 0x1000, ""},
		{"0xDEADbeef", 0xdeadbeef, ""},
		{"0xffffffff", 0xffffffff, ""},
		{"0x1", 1, ""}, // reserved, but that is sa.Config.Validate's to say
		{"4096", 0, "no 0x prefix"},
		{"0x", 0, "not an SPI"},
		{"0x100000000", 0, "not an SPI"},
		{"0xg", 0, "not an SPI"},
		{"0x+1", 0, "not an SPI"},
		{"", 0, "not an SPI"},
		{"-0x1", 0, "not an SPI"},
	}
	for _, tt := range tests {
		got, err := ParseSPI(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSPI(%q) = %#x, %v; want %#x", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseSPI(%q) error %v, want %q", tt.in, err, tt.err)
		}
	}
}

func FuzzParseSPI(f *testing.F) {
	for _, s := range []string{"0x1000", "0X1", "4096", "0x", "0xffffffff", "0x100000000", "0x-1", " 0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSPI(s)
		if err != nil {
			if !strings.Contains(err.Error(), "0x") {
				t.Errorf("error %q does not say what is accepted", err)
			}
			return
		}
		// Round trip: what parses is 0x + hex of the value.
		if back, err := ParseSPI("0x" + hex32(v)); err != nil || back != v {
			t.Errorf("round trip of %q: %#x, %v", s, back, err)
		}
	})
}

func hex32(v uint32) string {
	const d = "0123456789abcdef"
	var b []byte
	for i := 28; i >= 0; i -= 4 {
		b = append(b, d[v>>uint(i)&0xf])
	}
	return string(b)
}

// seedSARequest is seed 001's example, as JSON would carry it.
func seedSARequest() SAAddRequest {
	return SAAddRequest{
		VM: "vm1", SAName: "sa_2", SASource: "2001:DB8:1::121", SADestination: "2001:DB8:1::122",
		SAMode: "transport", SASPI: "0x1000", EncryptionAlgorithm: "3des-cbc",
		EncryptionKey:      "0x6970763672656164796c6f676f336465736362636f757432",
		IntegrityAlgorithm: "hmac-sha1", IntegrityKey: "0x6970763672656164796c6f67736861316f757432",
	}
}

func TestSAAddRequestParse(t *testing.T) {
	r := seedSARequest()
	vm, cfg, err := r.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if vm != "vm1" || cfg.SPI != 0x1000 || cfg.Src.String() != "2001:db8:1::121" || len(cfg.EncKey) != 24 || len(cfg.IntegKey) != 20 {
		t.Errorf("parsed %q %+v", vm, cfg.Redacted())
	}
	// ASCII keys, as esxcli allows.
	r.EncryptionKey, r.IntegrityKey = "ipv6readylogo3descbcout2", "ipv6readylogsha1out2"
	if _, cfg, err := r.Parse(); err != nil || string(cfg.EncKey) != "ipv6readylogo3descbcout2" {
		t.Errorf("ASCII keys: %v", err)
	}

	if cfg.Encap != nil {
		t.Errorf("no --encapsulation: %+v, want plain ESP", cfg.Encap)
	}
	for _, tc := range []struct {
		in   string
		want *sa.UDPEncap
	}{{"none", nil}, {"udp", &sa.UDPEncap{SrcPort: 4500, DstPort: 4500}}} {
		r.Encapsulation = tc.in
		_, cfg, err := r.Parse()
		if err != nil || (cfg.Encap == nil) != (tc.want == nil) || tc.want != nil && *cfg.Encap != *tc.want {
			t.Errorf("--encapsulation %s: %+v, %v; want %+v", tc.in, cfg.Encap, err, tc.want)
		}
	}

	bad := SAAddRequest{SASPI: "4096", SAMode: "tunel", SASource: "2001:db8::1/64", EncryptionAlgorithm: "des",
		IntegrityAlgorithm: "md5", EncryptionKey: "0xzz", ESN: "yes", ReplayWindow: "-1", Encapsulation: "esp-in-udp"}
	_, _, err = bad.Parse()
	if err == nil {
		t.Fatal("bad request parsed")
	}
	for _, flag := range []string{"--vm", "--sa-name", "--sa-source", "--sa-destination", "--sa-mode", "--sa-spi",
		"--encryption-algorithm", "--integrity-algorithm", "--encryption-key", "--esn", "--replay-window", "--encapsulation"} {
		if !strings.Contains(err.Error(), flag+":") {
			t.Errorf("error does not name %s:\n%v", flag, err)
		}
	}
	if strings.Contains(err.Error(), "zz") {
		t.Errorf("error quotes key material: %v", err)
	}
}

func TestSPAddRequestParse(t *testing.T) {
	// Seed 000 verbatim plus --vm: its prefixes are not IPv6 prefixes.
	r := SPAddRequest{VM: "vm1", SPSource: "2001:0DB8:0001:/48", SPDestination: "2001:0DB8:0002:/48",
		SourcePort: "23", DestinationPort: "25", UpperLayerProtocol: "tcp", FlowDirection: "out",
		Action: "ipsec", SPMode: "transport", SPName: "sp_2"}
	_, _, err := r.Parse()
	if err == nil || !strings.Contains(err.Error(), "2001:db8:1::/48") || !strings.Contains(err.Error(), "--sp-source") {
		t.Errorf("seed 000 prefix: %v, want refusal suggesting 2001:db8:1::/48", err)
	}
	// Seed 002's example.
	r = SPAddRequest{VM: "vm1", SPSource: "2001:db8:1::/64", SPDestination: "2002:db8:1::/64",
		SourcePort: "23", DestinationPort: "25", UpperLayerProtocol: "tcp", FlowDirection: "out",
		Action: "ipsec", SPMode: "transport", SAName: "sa1", SPName: "sp1"}
	p, w, err := r.Parse()
	if err != nil || len(w) != 0 || p.Src.String() != "2001:db8:1::/64" {
		t.Errorf("seed 002: %+v %q %v", p, w, err)
	}
	// Host bits are cleared with a warning.
	r.SPSource = "2001:DB8:1::5/64"
	p, w, err = r.Parse()
	if err != nil || len(w) != 1 || p.Src.String() != "2001:db8:1::/64" {
		t.Errorf("host bits: %+v %q %v", p, w, err)
	}
	r.SPSource = "2001:DB8:1::/64"
	if _, w, _ := r.Parse(); len(w) != 0 {
		t.Errorf("upper-case prefix without host bits warned: %q", w)
	}
}

func TestValueUnmarshal(t *testing.T) {
	var r SPAddRequest
	err := json.Unmarshal([]byte(`{"source_port": 23, "destination_port": "any", "vm": "x"}`), &r)
	if err != nil || r.SourcePort != "23" || r.DestinationPort != "any" {
		t.Errorf("got %+v, %v", r, err)
	}
	var s SAAddRequest
	if err := json.Unmarshal([]byte(`{"esn": true, "replay_window": null}`), &s); err != nil || s.ESN != "true" || s.ReplayWindow != "" {
		t.Errorf("got %+v, %v", s, err)
	}
	if err := json.Unmarshal([]byte(`{"esn": [1]}`), &s); err == nil {
		t.Error("array accepted as a Value")
	}
}

func TestSAAddRequestParseUnderlay(t *testing.T) {
	r := seedSARequest()
	r.VM, r.Tenant, r.SASPI = "", "t1", "auto"
	vm, cfg, err := r.Parse()
	if err != nil || vm != "" || cfg.SPI != daemon.SPIAuto {
		t.Errorf("underlay auto: %q %+v %v", vm, cfg.Redacted(), err)
	}
	r.VM = "vm1"
	if _, _, err := r.Parse(); err == nil || !strings.Contains(err.Error(), "--vm/--tenant") {
		t.Errorf("both --vm and --tenant: %v", err)
	}
	r.VM, r.SASPI = "", "0x0"
	if _, _, err := r.Parse(); err == nil || !strings.Contains(err.Error(), "--sa-spi") {
		t.Errorf("SPI 0x0: %v", err)
	}
}

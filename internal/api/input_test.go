package api

import (
	"net/netip"
	"strings"
	"testing"
)

func spRequest() SPAddRequest {
	return SPAddRequest{VM: "vm1", SPName: "sp1", SPSource: "2001:db8:1::/64", SPDestination: "2001:db8:2::/64",
		SourcePort: "any", DestinationPort: "any", UpperLayerProtocol: "any", FlowDirection: "out", Action: "none"}
}

// TestSPBareAddressIsStated: esxcli's --sp-source is ADDR/LEN; a bare
// address is taken as that one host, and the warning says so, naming the
// flag.
func TestSPBareAddressIsStated(t *testing.T) {
	for _, tc := range []struct{ flag, addr, want string }{
		{"--sp-source", "2001:db8:1::121", "2001:db8:1::121/128"},
		{"--sp-destination", "192.0.2.2", "192.0.2.2/32"},
	} {
		r := spRequest()
		if tc.flag == "--sp-source" {
			r.SPSource = tc.addr
		} else {
			r.SPDestination = tc.addr
		}
		pol, warnings, err := r.Parse()
		if err != nil {
			t.Fatalf("%s %s: %v", tc.flag, tc.addr, err)
		}
		got := map[string]netip.Prefix{"--sp-source": pol.Src, "--sp-destination": pol.Dst}[tc.flag]
		if got.String() != tc.want {
			t.Errorf("%s %s: %v, want %s", tc.flag, tc.addr, got, tc.want)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], tc.flag+" "+tc.addr+" has no /LEN") || !strings.Contains(warnings[0], tc.want) {
			t.Errorf("%s %s: warnings %q, want one naming the flag and %s", tc.flag, tc.addr, warnings, tc.want)
		}
	}
	// With a length, no warning.
	r := spRequest()
	if _, warnings, err := r.Parse(); err != nil || len(warnings) != 0 {
		t.Errorf("ADDR/LEN: %v, warnings %q", err, warnings)
	}
}

// TestSPPortsNeedAProtocol: ports with --upper-layer-protocol any are
// refused, naming the port flag; with tcp or udp, or any port, accepted.
func TestSPPortsNeedAProtocol(t *testing.T) {
	for _, tc := range []struct {
		name, src, dst, proto, err string
	}{
		{"source port", "23", "any", "any", "--source-port 23"},
		{"destination port", "any", "25", "any", "--destination-port 25"},
		{"both", "23", "25", "any", "--destination-port 25"},
		{"tcp", "23", "25", "tcp", ""},
		{"udp", "any", "53", "udp", ""},
		{"any ports", "any", "any", "any", ""},
		{"icmp6 type", "any", "135", "icmp6", ""},
	} {
		r := spRequest()
		r.SourcePort, r.DestinationPort, r.UpperLayerProtocol = Value(tc.src), Value(tc.dst), tc.proto
		_, _, err := r.Parse()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--upper-layer-protocol") {
			t.Errorf("%s: %v, want refused naming %s and --upper-layer-protocol", tc.name, err, tc.err)
		}
	}
}

// TestReplayWindowOneRange: a value that is no number and one out of
// range get the same message, with the one range the window accepts.
func TestReplayWindowOneRange(t *testing.T) {
	req := func(w string) *SAAddRequest {
		return &SAAddRequest{VM: "vm1", SAName: "s1", SASource: "2001:db8::1", SADestination: "2001:db8::2", SAMode: "transport",
			SASPI: "0x1000", EncryptionAlgorithm: "aes128-gcm", EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213",
			IntegrityAlgorithm: "none", ReplayWindow: Value(w)}
	}
	for _, w := range []string{"abc", "100000", "16", "4097", "-1", "99999999999999999999"} {
		_, _, err := req(w).Parse()
		if err == nil || !strings.Contains(err.Error(), "--replay-window") || !strings.Contains(err.Error(), "use 32-4096 packets (default 1024)") {
			t.Errorf("--replay-window %s: %v, want the range 32-4096", w, err)
		}
	}
	for _, w := range []string{"32", "64", "4096", "0"} {
		if _, cfg, err := req(w).Parse(); err != nil || w != "0" && cfg.ReplayWindow == 0 {
			t.Errorf("--replay-window %s: %v (%d)", w, err, cfg.ReplayWindow)
		}
	}
}

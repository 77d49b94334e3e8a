package tenant

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // canonical prefix; "" means an error is expected
		errHas  []string
		errNot  string
		sameOut bool
	}{
		{name: "seed 001 upper case", in: "2001:DB8:1::/48", want: "2001:db8:1::/48"},
		{name: "seed sp /64", in: "2001:db8:1::/64", want: "2001:db8:1::/64"},
		{name: "ipv4", in: "192.0.2.0/24", want: "192.0.2.0/24"},
		{name: "bare ipv6 is /128", in: "2001:db8::1", want: "2001:db8::1/128"},
		{name: "bare ipv4 is /32", in: "198.51.100.7", want: "198.51.100.7/32"},
		{name: "host bits masked v6", in: "2001:db8:1::5/64", want: "2001:db8:1::/64"},
		{name: "host bits masked v4", in: "203.0.113.77/24", want: "203.0.113.0/24"},
		{name: "zero length", in: "::/0", want: "::/0"},
		{name: "leading zero groups", in: "2001:0DB8:0001::/48", want: "2001:db8:1::/48"},
		{
			name:   "seed 000 single trailing colon",
			in:     "2001:0DB8:0001:/48",
			errHas: []string{`"2001:0DB8:0001:/48" is not a valid prefix`, "single \":\"", "write ADDR/LEN, e.g. 2001:db8:1::/48"},
		},
		{
			name:   "seed 000 destination",
			in:     "2001:0DB8:0002:/48",
			errHas: []string{"e.g. 2001:db8:2::/48"},
		},
		{name: "single leading colon", in: ":1/128", errHas: []string{"e.g. ::1/128"}},
		{name: "short ipv4", in: "192.0.2/24", errHas: []string{"e.g. 192.0.2.0/24"}},
		{name: "trailing dot ipv4", in: "198.51.100./24", errHas: []string{"e.g. 198.51.100.0/24"}},
		{name: "length too long v6", in: "2001:db8::/129", errHas: []string{"length must be a number 0-128", "e.g. 2001:db8:1::/48"}},
		{name: "length too long v4", in: "192.0.2.0/33", errHas: []string{"0-32", "e.g. 192.0.2.0/24"}},
		{name: "empty length", in: "2001:db8::/", errHas: []string{"0-128"}},
		{name: "zone", in: "fe80::1%eth0/64", errHas: []string{"zones (%eth0)", "e.g. fe80::/64"}},
		{name: "bare zone", in: "fe80::1%eth0", errHas: []string{"zones", "e.g. fe80::1/128"}},
		{name: "empty", in: "", errHas: []string{`"" is not a valid prefix`, "2001:db8:1::/48 or 192.0.2.0/24"}},
		{name: "garbage", in: "foo", errHas: []string{"write ADDR/LEN"}},
		{name: "two slashes", in: "2001:db8::/48/64", errHas: []string{"write ADDR/LEN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("ParsePrefix(%q): %v", tt.in, err)
				}
				if got.String() != tt.want {
					t.Fatalf("ParsePrefix(%q) = %v, want %v", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParsePrefix(%q) = %v, want an error", tt.in, got)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("ParsePrefix(%q) error %q does not contain %q", tt.in, err, s)
				}
			}
			// Every suggestion must itself parse.
			if _, sug, ok := strings.Cut(err.Error(), "e.g. "); ok {
				for _, s := range strings.Split(sug, " or ") {
					if _, err := ParsePrefix(s); err != nil {
						t.Errorf("suggestion %q does not parse: %v", s, err)
					}
				}
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   netip.Addr
		errHas string
	}{
		{name: "seed sa source upper case", in: "2001:DB8:1::121", want: netip.MustParseAddr("2001:db8:1::121")},
		{name: "ipv4", in: "192.0.2.1", want: netip.MustParseAddr("192.0.2.1")},
		{name: "zone", in: "fe80::1%eth0", errHas: "has a zone (%eth0)"},
		{name: "prefix", in: "2001:db8::/32", errHas: "is a prefix"},
		{name: "leading zero ipv4", in: "192.0.02.1", errHas: "not an IP address"},
		{name: "empty", in: "", errHas: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParseAddr(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAddr(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Port
		ok   bool
	}{
		{name: "any", in: "any", want: PortAny, ok: true},
		{name: "seed telnet", in: "23", want: PortNumber(23), ok: true},
		{name: "zero", in: "0", want: PortNumber(0), ok: true},
		{name: "max", in: "65535", want: PortNumber(65535), ok: true},
		{name: "leading zeros", in: "025", want: PortNumber(25), ok: true},
		{name: "too big", in: "65536"},
		{name: "huge", in: "99999999999999999999"},
		{name: "negative", in: "-1"},
		{name: "plus", in: "+1"},
		{name: "upper ANY", in: "ANY"},
		{name: "empty", in: ""},
		{name: "hex", in: "0x17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePort(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParsePort(%q) = %v, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "use 0-65535 or any") {
					t.Errorf("error %q does not say what is accepted", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePort(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
	if (Port{}).IsValid() || (Port{}).String() != "unset" {
		t.Errorf("zero Port must be unset")
	}
	if n, ok := PortNumber(443).Number(); !ok || n != 443 {
		t.Errorf("PortNumber(443).Number() = %d, %v", n, ok)
	}
	if _, ok := PortAny.Number(); ok || !PortAny.IsAny() {
		t.Errorf("PortAny has a number")
	}
}

func TestParseProtoAction(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Proto
		num  uint8
	}{
		{"any", ProtoAny, 0}, {"tcp", ProtoTCP, 6}, {"udp", ProtoUDP, 17},
		{"icmp6", ProtoICMP6, 58}, {"icmp", ProtoICMP, 1},
	} {
		got, err := ParseProto(tt.in)
		if err != nil || got != tt.want || got.String() != tt.in || got.Number() != tt.num {
			t.Errorf("ParseProto(%q) = %v (%d), %v", tt.in, got, got.Number(), err)
		}
	}
	for _, in := range []string{"", "TCP", "sctp", "ipv6-icmp", "6"} {
		if _, err := ParseProto(in); err == nil || !strings.Contains(err.Error(), "use any, tcp, udp, icmp6 or icmp") {
			t.Errorf("ParseProto(%q) error = %v", in, err)
		}
	}
	for _, tt := range []struct {
		in   string
		want Action
	}{{"none", ActionNone}, {"discard", ActionDiscard}, {"ipsec", ActionIPsec}} {
		got, err := ParseAction(tt.in)
		if err != nil || got != tt.want || got.String() != tt.in {
			t.Errorf("ParseAction(%q) = %v, %v", tt.in, got, err)
		}
	}
	for _, in := range []string{"", "bypass", "IPsec"} {
		if _, err := ParseAction(in); err == nil || !strings.Contains(err.Error(), "use none, discard or ipsec") {
			t.Errorf("ParseAction(%q) error = %v", in, err)
		}
	}
	if ActionInvalid.String() != "Action(0)" || ProtoInvalid.String() != "Proto(0)" {
		t.Errorf("invalid zero values print as %v, %v", ActionInvalid, ProtoInvalid)
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   MAC
		errHas string
	}{
		{name: "lower", in: "52:54:00:12:34:56", want: MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}},
		{name: "upper", in: "52:54:00:AB:CD:EF", want: MAC{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}},
		{name: "locally administered", in: "02:00:00:00:00:01", want: MAC{2, 0, 0, 0, 0, 1}},
		{name: "zero", in: "00:00:00:00:00:00", errHas: "all-zero"},
		{name: "broadcast", in: "ff:ff:ff:ff:ff:ff", errHas: "multicast"},
		{name: "ipv6 multicast", in: "33:33:00:00:00:01", errHas: "multicast"},
		{name: "dashes", in: "52-54-00-12-34-56", errHas: "six hex pairs separated by colons"},
		{name: "short", in: "52:54:00:12:34", errHas: "six hex pairs"},
		{name: "single digits", in: "2:54:0:12:34:56:", errHas: "six hex pairs"},
		{name: "non hex", in: "52:54:00:12:34:5g", errHas: "six hex pairs"},
		{name: "empty", in: "", errHas: "six hex pairs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMAC(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParseMAC(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMAC(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != strings.ToLower(tt.in) {
				t.Errorf("String() = %q", got)
			}
		})
	}
}

func TestParseVLAN(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"0", 0, true}, {"100", 100, true}, {"4094", 4094, true},
		{"4095", 0, false}, {"65536", 0, false}, {"-1", 0, false}, {"", 0, false}, {"any", 0, false},
	} {
		got, err := ParseVLAN(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseVLAN(%q) = %d, %v", tt.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "use 0-4094") {
			t.Errorf("ParseVLAN(%q) error %q does not say what is accepted", tt.in, err)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		errHas string
	}{
		{name: "seed sp", in: "sp_2"},
		{name: "seed sa", in: "sa1"},
		{name: "dots and dashes", in: "web-01.tenant_a"},
		{name: "digit first", in: "1vm"},
		{name: "max length", in: strings.Repeat("a", 64)},
		{name: "too long", in: strings.Repeat("a", 65), errHas: "65 characters long"},
		{name: "empty", in: "", errHas: "empty name"},
		{name: "flag-like", in: "--vm", errHas: `starts with '-'`},
		{name: "underscore first", in: "_x", errHas: "starts with '_'"},
		{name: "space", in: "a b", errHas: "contains ' '"},
		{name: "slash", in: "a/b", errHas: "contains '/'"},
		{name: "non ascii", in: "vmé", errHas: "contains 'é'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.in)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("ValidName(%q) = %v", tt.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "1-64 characters") {
				t.Fatalf("ValidName(%q) = %v; want error containing %q", tt.in, err, tt.errHas)
			}
		})
	}
}

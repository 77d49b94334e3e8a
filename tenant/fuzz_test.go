package tenant

import (
	"github.com/vifsec/vifsec/header"

	"strings"
	"testing"
)

func FuzzParseFlow(f *testing.F) {
	f.Add(ipv6(v6a, v6b, 64, nil, header.ProtoTCP, tcpHdr(23, 25)))
	f.Add(ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true)}, header.ProtoTCP, tcpHdr(1024, 443)))
	f.Add(ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), optsHdr(header.ProtoDstOpts, 2), routingHdr(), fragHdr(7, false)}, header.ProtoUDP, make([]byte, 8)))
	f.Add(ipv6("fe80::1", "ff02::1", 255, nil, header.ProtoICMPv6, icmpHdr(135, 0)))
	f.Add(ipv4(v4a, v4b, 64, nops, 0, false, header.ProtoUDP, udpHdr(68, 67, 4)))
	f.Add(ipv4(v4a, v4b, 64, nil, 0, true, header.ProtoTCP, tcpHdr(1, 2)))
	f.Add(ipv4(v4a, v4b, 64, nil, 5, false, header.ProtoTCP, nil))
	f.Add(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoICMP, icmpHdr(8, 0)))
	f.Add([]byte{0x60})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := append([]byte(nil), pkt...)
		var fl Flow
		ok := ParseFlow(pkt, &fl)
		if string(orig) != string(pkt) {
			t.Fatal("ParseFlow modified the packet")
		}
		var again Flow
		if ParseFlow(pkt, &again) != ok || ok && again != fl {
			t.Fatal("ParseFlow is not deterministic")
		}
		if !ok {
			return
		}
		switch pkt[0] >> 4 {
		case 4:
			if !fl.Src.Is4() || !fl.Dst.Is4() {
				t.Fatalf("IPv4 packet gave addresses %v, %v", fl.Src, fl.Dst)
			}
		case 6:
			if !fl.Src.Is6() || !fl.Dst.Is6() || fl.Src.Zone() != "" || fl.Dst.Zone() != "" {
				t.Fatalf("IPv6 packet gave addresses %v, %v", fl.Src, fl.Dst)
			}
		default:
			t.Fatalf("version %d accepted", pkt[0]>>4)
		}
		isPorts := fl.Proto == header.ProtoTCP || fl.Proto == header.ProtoUDP
		isICMP := fl.Proto == header.ProtoICMP || fl.Proto == header.ProtoICMPv6
		if fl.HasL4 && !isPorts && !isICMP {
			t.Fatalf("HasL4 for protocol %d", fl.Proto)
		}
		if (!fl.HasL4 || !isPorts) && (fl.SrcPort != 0 || fl.DstPort != 0) {
			t.Fatalf("ports set without a TCP/UDP header: %+v", fl)
		}
		if (!fl.HasL4 || !isICMP) && fl.ICMPType != 0 {
			t.Fatalf("ICMP type set without an ICMP header: %+v", fl)
		}
		if !fl.Fragment && !fl.HasL4 && (isPorts || isICMP) {
			t.Fatalf("unfragmented %d packet without its header accepted: %+v", fl.Proto, fl)
		}
		if fl.NonFirst && (!fl.Fragment || fl.HasL4) {
			t.Fatalf("non-first fragment that is no fragment or has its header: %+v", fl)
		}
		if IsNeighborDiscovery(&fl) && (fl.Fragment || fl.HopLimit != 255 || fl.Proto != header.ProtoICMPv6) {
			t.Fatalf("IsNeighborDiscovery(%+v)", fl)
		}
		// The classifier must not panic on anything ParseFlow produces.
		spd := Compile([]Policy{seedPolicy()})
		spd.Lookup(seedPolicy().Direction, &fl)
		if fl.NonFirst {
			spd.LookupFragment(seedPolicy().Direction, &fl, func(i, j int) bool { return i == j })
		}
	})
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"2001:DB8:1::/48", "2001:0DB8:0001:/48", "192.0.2.0/24", "2001:db8::1", "198.51.100.7",
		"2001:db8:1::5/64", "::/0", "fe80::1%eth0/64", "192.0.2/24", ":1/128", "::ffff:192.0.2.0/120", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			if !strings.Contains(err.Error(), "write ADDR/LEN, e.g. ") {
				t.Fatalf("error %q does not say what is accepted", err)
			}
			// A suggestion derived from the input must itself be valid.
			_, sug, _ := strings.Cut(err.Error(), "e.g. ")
			for _, s := range strings.Split(sug, " or ") {
				if _, err := ParsePrefix(s); err != nil {
					t.Fatalf("suggestion %q does not parse: %v", s, err)
				}
			}
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %v: not valid and masked", s, p)
		}
		q, err := ParsePrefix(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, p, q, err)
		}
	})
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"any", "0", "23", "65535", "65536", "025", "-1", "+1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if !p.IsValid() {
			t.Fatalf("ParsePort(%q) = unset", s)
		}
		q, err := ParsePort(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, p, q, err)
		}
		b, _ := p.MarshalText()
		var r Port
		if err := r.UnmarshalText(b); err != nil || r != p {
			t.Fatalf("text round trip %q -> %s -> %v, %v", s, b, r, err)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56", "52:54:00:AB:CD:EF", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "52-54-00-12-34-56", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if m.IsZero() || m.IsMulticast() {
			t.Fatalf("ParseMAC(%q) accepted %v", s, m)
		}
		q, err := ParseMAC(m.String())
		if err != nil || q != m || !strings.EqualFold(m.String(), s) {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, m, q, err)
		}
	})
}

package tenant

import (
	"github.com/vifsec/vifsec/header"

	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
)

// lookupRef is the slow reference for SPD.Lookup, written from the
// matching rules with netip.Prefix.Contains.
func lookupRef(policies []Policy, dir sa.Direction, f *Flow) int {
	ports := f.HasL4 && (f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP)
	for i, p := range policies {
		if p.Direction != dir || !p.SrcPort.IsValid() || !p.DstPort.IsValid() ||
			p.ULProto == ProtoInvalid || p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
			continue
		}
		if !p.Src.Contains(f.Src) || !p.Dst.Contains(f.Dst) {
			continue
		}
		if p.ULProto != ProtoAny && p.ULProto.Number() != f.Proto {
			continue
		}
		if n, ok := p.SrcPort.Number(); ok && (!ports || n != f.SrcPort) {
			continue
		}
		if n, ok := p.DstPort.Number(); ok {
			if p.ULProto.isICMP() {
				if !f.HasL4 || n != uint16(f.ICMPType) {
					continue
				}
			} else if !ports || n != f.DstPort {
				continue
			}
		}
		return i
	}
	return -1
}

func pol(src, dst string, proto Proto, sport, dport Port, dir sa.Direction, act Action) Policy {
	p := Policy{
		Name: "sp", VM: "vm1",
		Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst),
		SrcPort: sport, DstPort: dport, ULProto: proto, Direction: dir, Action: act,
	}
	if act == ActionIPsec {
		p.Mode, p.SAName = sa.ModeTransport, "sa1"
	}
	return p
}

func TestLookupSeed(t *testing.T) {
	spd := Compile([]Policy{seedPolicy()})
	tests := []struct {
		name string
		dir  sa.Direction
		pkt  []byte
		want int
	}{
		{name: "seed flow out", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64, nil, header.ProtoTCP, tcpHdr(23, 25)), want: 0},
		{name: "seed flow through fragment + hbh", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1:0:ffff::1", 64,
			[]ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true)}, header.ProtoTCP, tcpHdr(23, 25)), want: 0},
		{name: "inbound direction", dir: sa.DirIn, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64, nil, header.ProtoTCP, tcpHdr(23, 25)), want: -1},
		{name: "other source port", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64, nil, header.ProtoTCP, tcpHdr(24, 25)), want: -1},
		{name: "other destination port", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64, nil, header.ProtoTCP, tcpHdr(23, 26)), want: -1},
		{name: "udp", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64, nil, header.ProtoUDP, udpHdr(23, 25, 0)), want: -1},
		{name: "source outside /64", dir: sa.DirOut, pkt: ipv6("2001:db8:2::121", "2002:db8:1::122", 64, nil, header.ProtoTCP, tcpHdr(23, 25)), want: -1},
		{name: "destination outside /64", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1:1::122", 64, nil, header.ProtoTCP, tcpHdr(23, 25)), want: -1},
		{name: "non-first fragment has no ports", dir: sa.DirOut, pkt: ipv6("2001:db8:1::121", "2002:db8:1::122", 64,
			[]ext6{fragHdr(100, false)}, header.ProtoTCP, make([]byte, 8)), want: -1},
		{name: "ipv4", dir: sa.DirOut, pkt: ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoTCP, tcpHdr(23, 25)), want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			if !ParseFlow(tt.pkt, &f) {
				t.Fatal("ParseFlow = false")
			}
			if got := spd.Lookup(tt.dir, &f); got != tt.want {
				t.Fatalf("Lookup(%v, %+v) = %d, want %d", tt.dir, f, got, tt.want)
			}
		})
	}
}

func TestLookupOrderAndSelectors(t *testing.T) {
	out, in := sa.DirOut, sa.DirIn
	policies := []Policy{
		0: pol("2001:db8:1::/64", "2001:db8:2::/64", ProtoICMP6, PortAny, PortNumber(128), out, ActionNone),
		1: pol("2001:db8:1::/64", "2001:db8:2::/64", ProtoAny, PortAny, PortNumber(53), out, ActionNone),
		2: pol("2001:db8:1::5/128", "2001:db8::/32", ProtoTCP, PortAny, PortAny, out, ActionDiscard),
		3: pol("2001:db8::/32", "::/0", ProtoAny, PortAny, PortAny, out, ActionIPsec),
		4: pol("192.0.2.0/24", "203.0.113.0/24", ProtoICMP, PortAny, PortNumber(8), in, ActionDiscard),
		5: pol("0.0.0.0/0", "0.0.0.0/0", ProtoAny, PortAny, PortAny, in, ActionIPsec),
		6: {Name: "unset", Direction: out}, // never matches
	}
	spd := Compile(policies)
	if spd.Len() != len(policies) {
		t.Fatalf("Len() = %d", spd.Len())
	}
	tests := []struct {
		name string
		dir  sa.Direction
		pkt  []byte
		want int
	}{
		{name: "icmp6 echo request by type", dir: out, pkt: ipv6("2001:db8:1::9", "2001:db8:2::1", 64, nil, header.ProtoICMPv6, icmpHdr(128, 0)), want: 0},
		{name: "icmp6 echo reply falls through", dir: out, pkt: ipv6("2001:db8:1::9", "2001:db8:2::1", 64, nil, header.ProtoICMPv6, icmpHdr(129, 0)), want: 3},
		{name: "any proto with port: udp 53", dir: out, pkt: ipv6("2001:db8:1::9", "2001:db8:2::1", 64, nil, header.ProtoUDP, udpHdr(5000, 53, 0)), want: 1},
		{name: "any proto with port: tcp 53", dir: out, pkt: ipv6("2001:db8:1::9", "2001:db8:2::1", 64, nil, header.ProtoTCP, tcpHdr(5000, 53)), want: 1},
		{name: "any proto with port: not esp", dir: out, pkt: ipv6("2001:db8:1::9", "2001:db8:2::1", 64, nil, 50, make([]byte, 16)), want: 3},
		{name: "host /128 tcp", dir: out, pkt: ipv6("2001:db8:1::5", "2001:db8:ffff::1", 64, nil, header.ProtoTCP, tcpHdr(1, 2)), want: 2},
		{name: "host /128 not udp", dir: out, pkt: ipv6("2001:db8:1::5", "2001:db8:ffff::1", 64, nil, header.ProtoUDP, udpHdr(1, 2, 0)), want: 3},
		{name: "outside documentation prefix", dir: out, pkt: ipv6("2002:db8::1", "2001:db8::1", 64, nil, header.ProtoUDP, udpHdr(1, 2, 0)), want: -1},
		{name: "ipv4 echo in", dir: in, pkt: ipv4("192.0.2.1", "203.0.113.9", 64, nil, 0, false, header.ProtoICMP, icmpHdr(8, 0)), want: 4},
		{name: "ipv4 echo reply in", dir: in, pkt: ipv4("192.0.2.1", "203.0.113.9", 64, nil, 0, false, header.ProtoICMP, icmpHdr(0, 0)), want: 5},
		{name: "ipv4 does not match ipv6 ::/0 rules", dir: out, pkt: ipv4("192.0.2.1", "203.0.113.9", 64, nil, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)), want: -1},
		{name: "v4-mapped ipv6 does not match ipv4 rules", dir: in, pkt: ipv6("::ffff:192.0.2.1", "::ffff:203.0.113.9", 64, nil, header.ProtoUDP, udpHdr(1, 2, 0)), want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			if !ParseFlow(tt.pkt, &f) {
				t.Fatal("ParseFlow = false")
			}
			if got := spd.Lookup(tt.dir, &f); got != tt.want {
				t.Fatalf("Lookup(%v, %+v) = %d, want %d", tt.dir, f, got, tt.want)
			}
			if ref := lookupRef(policies, tt.dir, &f); ref != tt.want {
				t.Fatalf("lookupRef = %d, want %d (test is wrong)", ref, tt.want)
			}
		})
	}
	var nilSPD *SPD
	f := mkFlow(v6a, v6b, header.ProtoTCP, 1, 2, 0, 64, true, false)
	if nilSPD.Lookup(out, &f) != -1 || nilSPD.Len() != 0 || spd.Lookup(sa.DirInvalid, &f) != -1 || spd.Lookup(out, &Flow{}) != -1 {
		t.Errorf("nil SPD, invalid direction or zero flow matched")
	}
}

// randPolicy and randFlow draw from a small space so that matches, near
// misses and family mix-ups are all common.
func randPolicy(r *rand.Rand) Policy {
	v4 := r.IntN(2) == 0
	pfx := func() netip.Prefix {
		if v4 {
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(4))})
			return netip.PrefixFrom(a, r.IntN(33)).Masked()
		}
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(4))})
		return netip.PrefixFrom(a, []int{0, 16, 32, 64, 126, 127, 128}[r.IntN(7)]).Masked()
	}
	port := func() Port {
		if r.IntN(2) == 0 {
			return PortAny
		}
		return PortNumber(uint16(r.IntN(3)))
	}
	return Policy{
		Src: pfx(), Dst: pfx(), SrcPort: port(), DstPort: port(),
		ULProto:   Proto(1 + r.IntN(5)),
		Direction: sa.Direction(1 + r.IntN(2)),
		Action:    ActionDiscard,
	}
}

func randFlow(r *rand.Rand) Flow {
	var f Flow
	if r.IntN(2) == 0 {
		f.Src = netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(4))})
		f.Dst = netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(4))})
	} else {
		f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(4))})
		f.Dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(4))})
	}
	f.Proto = []uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoICMP, header.ProtoICMPv6, 50}[r.IntN(5)]
	f.HasL4 = r.IntN(4) != 0 && f.Proto != 50
	if f.HasL4 {
		switch f.Proto {
		case header.ProtoTCP, header.ProtoUDP:
			f.SrcPort, f.DstPort = uint16(r.IntN(3)), uint16(r.IntN(3))
		default:
			f.ICMPType = uint8(r.IntN(3))
		}
	}
	return f
}

// TestLookupMatchesReference diffs the compiled SPD against lookupRef.
func TestLookupMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		policies := make([]Policy, r.IntN(12))
		for i := range policies {
			policies[i] = randPolicy(r)
		}
		spd := Compile(policies)
		for range 50 {
			f := randFlow(r)
			dir := sa.Direction(1 + r.IntN(2))
			if got, want := spd.Lookup(dir, &f), lookupRef(policies, dir, &f); got != want {
				t.Fatalf("Lookup(%v, %+v) = %d, reference %d; policies:\n%+v", dir, f, got, want, policies)
			}
		}
	}
}

// benchPolicies returns n policies of which only the last matches benchFlow.
func benchPolicies(n int) []Policy {
	ps := make([]Policy, n)
	for i := range ps {
		dst := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x02, 0x0d, 0xb8, 4: byte(i >> 8), 5: byte(i)}), 48)
		ps[i] = Policy{
			Src: netip.MustParsePrefix("2001:db8:1::/64"), Dst: dst,
			SrcPort: PortAny, DstPort: PortNumber(25), ULProto: ProtoTCP,
			Direction: sa.DirOut, Action: ActionIPsec, Mode: sa.ModeTransport, SAName: "sa1",
		}
	}
	return ps
}

func benchFlow(n int) Flow {
	i := n - 1
	return Flow{
		Src: netip.MustParseAddr("2001:db8:1::121"), Dst: netip.AddrFrom16([16]byte{0x20, 0x02, 0x0d, 0xb8, 4: byte(i >> 8), 5: byte(i), 15: 1}),
		Proto: header.ProtoTCP, SrcPort: 23, DstPort: 25, HasL4: true, HopLimit: 64,
	}
}

func TestLookupAllocs(t *testing.T) {
	for _, n := range []int{1, 16, 256} {
		spd := Compile(benchPolicies(n))
		f := benchFlow(n)
		if got := spd.Lookup(sa.DirOut, &f); got != n-1 {
			t.Fatalf("%d rules: Lookup = %d, want %d", n, got, n-1)
		}
		if a := testing.AllocsPerRun(1000, func() { spd.Lookup(sa.DirOut, &f) }); a != 0 {
			t.Errorf("%d rules: Lookup allocates %v times, want 0", n, a)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			spd := Compile(benchPolicies(n))
			f := benchFlow(n)
			b.ReportAllocs()
			for b.Loop() {
				if spd.Lookup(sa.DirOut, &f) != n-1 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// lookupFragmentRef is the slow reference for SPD.LookupFragment: the
// outcome of every datagram the fragment f may belong to, by lookupRef
// on f with each port pair or ICMP type the policies name and one they
// do not.
func lookupFragmentRef(policies []Policy, dir sa.Direction, f *Flow, class func(int) int) (int, bool) {
	values := []uint16{3} // named by no policy
	for _, p := range policies {
		for _, pt := range []Port{p.SrcPort, p.DstPort} {
			if n, ok := pt.Number(); ok {
				values = append(values, n)
			}
		}
	}
	var outcomes []int
	g := *f
	g.NonFirst, g.HasL4 = false, true
	switch f.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		for _, sp := range values {
			for _, dp := range values {
				g.SrcPort, g.DstPort = sp, dp
				outcomes = append(outcomes, lookupRef(policies, dir, &g))
			}
		}
	case header.ProtoICMP, header.ProtoICMPv6:
		for _, t := range values {
			g.ICMPType = uint8(t)
			outcomes = append(outcomes, lookupRef(policies, dir, &g))
		}
	default:
		g.HasL4 = false
		outcomes = append(outcomes, lookupRef(policies, dir, &g))
	}
	for _, o := range outcomes {
		if class(o) != class(outcomes[0]) {
			return -1, false
		}
	}
	// The answer names the last possible match: the wildcard policy
	// (the match of the port pair no policy names), or the default.
	return outcomes[0], true
}

// TestLookupFragmentSound checks LookupFragment against the reference on
// random policies whose outcomes are one of three classes (the default is
// a fourth or one of them): whenever it answers ok, every datagram the
// fragment may belong to has the outcome it names. It may refuse more than
// the reference (it does not work out that a policy is shadowed by an
// earlier one for every port it names), which the count bounds.
func TestLookupFragmentSound(t *testing.T) {
	var cases, stricter int
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		policies := make([]Policy, r.IntN(12))
		classes := make([]int, len(policies))
		for i := range policies {
			policies[i] = randPolicy(r)
			classes[i] = r.IntN(3)
		}
		def := r.IntN(4)
		class := func(i int) int {
			if i < 0 {
				return def
			}
			return classes[i]
		}
		same := func(i, j int) bool { return class(i) == class(j) }
		spd := Compile(policies)
		for range 50 {
			f := randFlow(r)
			f.NonFirst, f.Fragment, f.HasL4, f.SrcPort, f.DstPort, f.ICMPType = true, true, false, 0, 0, 0
			dir := sa.Direction(1 + r.IntN(2))
			got, ok := spd.LookupFragment(dir, &f, same)
			want, wantOK := lookupFragmentRef(policies, dir, &f, class)
			if ok && (!wantOK || class(got) != class(want)) {
				t.Fatalf("LookupFragment(%v, %+v) = %d (class %d), %v; reference %d (class %d), %v; policies:\n%+v",
					dir, f, got, class(got), ok, want, class(want), wantOK, policies)
			}
			cases++
			if !ok && wantOK {
				stricter++
			}
		}
	}
	if stricter*20 > cases {
		t.Errorf("refused %d of %d fragments the reference lets through", stricter, cases)
	}
	t.Logf("refused %d of %d fragments the reference lets through (shadowed policies)", stricter, cases)
}

func TestLookupFragment(t *testing.T) {
	out := sa.DirOut
	policies := []Policy{
		0: pol("192.0.2.1/32", "192.0.2.2/32", ProtoUDP, PortAny, PortNumber(5000), out, ActionIPsec),
		1: pol("192.0.2.1/32", "198.51.100.0/24", ProtoAny, PortAny, PortAny, out, ActionIPsec),
		2: pol("192.0.2.1/32", "203.0.113.0/24", ProtoTCP, PortAny, PortNumber(22), out, ActionNone),
		3: pol("192.0.2.1/32", "203.0.113.0/24", ProtoAny, PortAny, PortAny, out, ActionNone),
		4: pol("2001:db8:1::/64", "::/0", ProtoICMP6, PortAny, PortNumber(128), out, ActionDiscard),
		5: pol("2001:db8:1::/64", "::/0", ProtoAny, PortAny, PortAny, out, ActionIPsec),
	}
	spd := Compile(policies)
	same := func(i, j int) bool {
		a, b := ActionNone, ActionNone // the default
		if i >= 0 {
			a = policies[i].Action
		}
		if j >= 0 {
			b = policies[j].Action
		}
		return a == b
	}
	frag := func(pkt []byte) Flow {
		var f Flow
		if !ParseFlow(pkt, &f) || !f.NonFirst {
			t.Fatalf("not a non-first fragment: %+v", f)
		}
		return f
	}
	tests := []struct {
		name   string
		f      Flow
		want   int
		wantOK bool
	}{
		{"udp 5000 policy or default: disagree", frag(ipv4("192.0.2.1", "192.0.2.2", 64, nil, 185, false, header.ProtoUDP, make([]byte, 8))), -1, false},
		{"tcp to that peer: no candidate, default", frag(ipv4("192.0.2.1", "192.0.2.2", 64, nil, 185, false, header.ProtoTCP, make([]byte, 8))), -1, true},
		{"any-port ipsec", frag(ipv4("192.0.2.1", "198.51.100.9", 64, nil, 185, false, header.ProtoUDP, make([]byte, 8))), 1, true},
		{"tcp 22 none then any none: agree", frag(ipv4("192.0.2.1", "203.0.113.9", 64, nil, 185, false, header.ProtoTCP, make([]byte, 8))), 3, true},
		{"icmpv6 echo discard or ipsec: disagree", frag(ipv6("2001:db8:1::1", "2001:db8:2::1", 64, []ext6{fragHdr(100, false)}, header.ProtoICMPv6, make([]byte, 8))), -1, false},
		{"udp v6: only the any-port ipsec", frag(ipv6("2001:db8:1::1", "2001:db8:2::1", 64, []ext6{fragHdr(100, false)}, header.ProtoUDP, make([]byte, 8))), 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := spd.LookupFragment(out, &tt.f, same)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("LookupFragment = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	f := tests[0].f
	if a := testing.AllocsPerRun(1000, func() { spd.LookupFragment(out, &f, same) }); a != 0 {
		t.Errorf("LookupFragment allocates %v times, want 0", a)
	}
}

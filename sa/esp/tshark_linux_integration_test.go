//go:build linux

package esp

// The independent cross-check: packets built by Encap are written to a
// pcap and decrypted by tshark's ESP dissector (Wireshark's own crypto
// through libgcrypt, sharing no code with ours), keyed by a uat:esp_sa
// entry per SA. See shared/lab/tshark-esp.md.
//
// What tshark 4.0 can and cannot check:
//   - Every EncAlg with a TsharkName (3des-cbc, aes128/256-cbc, null and
//     aes128/256-gcm) with every integrity algorithm, in transport and
//     tunnel mode, over IPv6 and IPv4 (and tunnels of one family in the
//     other): tshark must decrypt each packet to exactly the inner UDP
//     datagram we put in, with the padding and next header we chose.
//   - The ICV: tshark recomputes it (HMAC for CBC and null; the GCM tag
//     too, in the 4.0.17 Debian package, which prints [correct] for it) and
//     must call every packet's ICV correct; a copy of one packet per SA
//     with one ICV bit flipped must be reported bad, so the check cannot
//     pass vacuously. (shared/lab/tshark-esp.md says GCM shows
//     [unchecked]; the installed 4.0.17 checks it, and this test holds it
//     to that.)
//   - The inner UDP checksum, computed here before Encap, must verify in
//     tshark: the inner packet survived byte for byte, addresses included.
//   - ESP in UDP (RFC 3948, SAs with Encap), both modes and families:
//     tshark's udpencap dissector, registered on UDP port 4500, hands the
//     datagram to ESP, which must decrypt it as above; the outer UDP
//     header must carry the SA's ports, the ESP packet as its payload, a
//     checksum tshark verifies over IPv6 and none (0) over IPv4.
//   - ChaCha20-Poly1305: tshark 4.0 cannot decrypt it at all (it has no
//     TsharkName); the RFC 7634 ESP known-answer test covers it.
//   - ESN: tshark 4.0's esp_sa table has no sequence-number column (its
//     eight fields are protocol, addresses, SPI, algorithms and keys), so it
//     cannot include the high 32 bits. For ESN SAs whose high half is
//     non-zero we check what that still shows: the payload decrypts, and
//     the ICV (HMAC or GCM tag) is reported bad, which shows the high half
//     was authenticated (an ICV over the wire bytes alone would match).
//     That the high half is the right one is left to the round-trip and
//     known-answer tests.
//
// No network is used, so no namespace is made: the test needs only the
// tshark binary.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/pcap"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// tsharkSA is one SA under test and the packets sent on it.
type tsharkSA struct {
	name    string
	cfg     sa.Config
	out     *sa.SA
	innerV6 bool
	esn     bool
	udp     bool // ESP in UDP (RFC 3948), decoded by tshark's udpencap dissector on port 4500
}

// tsharkPkt is what we put into one ESP packet and expect tshark to find.
type tsharkPkt struct {
	sa           *tsharkSA
	seq          uint64
	sport, dport uint16
	payload      []byte // UDP payload, distinct per packet
	padLen       int
	next         int  // ESP next header
	tampered     bool // ICV bit flipped after Encap
	wantICVGood  bool
	innerSrc     netip.Addr
	innerDst     netip.Addr
	outerSrc     netip.Addr // == inner in transport mode
	outerDst     netip.Addr
	frameNumber  int
	udpPayload   []byte // ESP in UDP: the outer UDP datagram's payload (the ESP packet)
}

func requireTshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("tshark not found (%v) and CI=true: install the Debian package tshark (make deps)", err)
	}
	t.Skipf("tshark not found (%v): install the Debian package tshark to run the independent ESP cross-check", err)
	return ""
}

func TestIntegrationTsharkDecrypts(t *testing.T) {
	tshark := requireTshark(t)

	var sas []*tsharkSA
	spi := uint32(0x2000)
	add := func(suite satest.Suite, mode sa.Mode, outerV6, innerV6, esn, udp bool) {
		spi++
		var src, dst netip.Addr
		switch {
		case mode == sa.ModeTransport && outerV6:
			src, dst = satest.V6A, satest.V6B
		case mode == sa.ModeTransport:
			src, dst = satest.V4A, satest.V4B
		case outerV6:
			src, dst = satest.V6GwA, satest.V6GwB
		default:
			src, dst = satest.V4GwA, satest.V4GwB
		}
		name := fmt.Sprintf("%v/%v/outer=%s/inner=%s/esn=%v/udp=%v", suite, mode, fam(outerV6), fam(innerV6), esn, udp)
		cfg := satest.Config(fmt.Sprintf("ts%d", spi), suite, mode, src, dst, spi)
		cfg.Dir = sa.DirOut
		cfg.ESN = esn
		if udp {
			// The source port a NAT mapped; the peer's port is 4500.
			cfg.Encap = &sa.UDPEncap{SrcPort: 31000 + uint16(spi&0xff), DstPort: NATTPort}
		}
		// satest keys depend on the SPI's low byte; make every SA's keys
		// distinct regardless, so a wrong uat row can never decrypt by luck.
		cfg.EncKey = satest.Key(suite.Enc.KeyLen(), byte(spi)^byte(spi>>8))
		cfg.IntegKey = satest.Key(suite.Integ.KeyLen(), byte(spi)+0x80)
		s := &tsharkSA{name: name, cfg: cfg, out: satest.MustNew(cfg), innerV6: innerV6, esn: esn, udp: udp}
		if esn {
			// A non-zero high half, so leaving it out of the ICV or AAD
			// would be visible.
			s.out.SetNextSeq(3<<32 | 1000)
		}
		sas = append(sas, s)
	}
	for _, suite := range satest.Suites() {
		if suite.Enc.TsharkName() == "" || suite.Integ.TsharkName() == "" {
			continue // chacha20-poly1305: tshark 4.0 cannot decrypt it (covered by the RFC 7634 KAT)
		}
		for _, v6 := range []bool{true, false} {
			add(suite, sa.ModeTransport, v6, v6, false, false)
			add(suite, sa.ModeTunnel, v6, v6, false, false)
			add(suite, sa.ModeTunnel, v6, !v6, false, false) // 4in6 and 6in4
		}
	}
	esnSuites := []satest.Suite{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, {Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256}}
	for _, suite := range esnSuites {
		add(suite, sa.ModeTransport, true, true, true, false)
		add(suite, sa.ModeTunnel, false, false, true, false)
	}
	// ESP in UDP (RFC 3948): both modes, both families, one suite of each
	// kind. tshark's udpencap dissector (registered on UDP port 4500)
	// hands the datagram to ESP.
	udpSuites := []satest.Suite{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, {Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256},
		{Enc: sa.Enc3DESCBC, Integ: sa.IntegHMACSHA1}, {Enc: sa.EncNull, Integ: sa.IntegHMACSHA256}}
	for _, suite := range udpSuites {
		for _, v6 := range []bool{true, false} {
			add(suite, sa.ModeTransport, v6, v6, false, true)
			add(suite, sa.ModeTunnel, v6, !v6, false, true)
		}
	}

	// Build the packets and the capture.
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "esp.pcap")
	f, err := os.Create(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkTypeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sc sa.Scratch
	var pkts []*tsharkPkt
	ts := time.Unix(1700000000, 0)
	for i, s := range sas {
		// Sizes vary the padding; 1400 is a full-MTU datagram.
		for j, size := range []int{1 + i%17, 100 + i, 1400} {
			p := buildTsharkPkt(t, s, &sc, rng, uint16(len(pkts)), size)
			tamper := j == 1
			if err := w.WritePacket(ts.Add(time.Duration(len(pkts))*time.Millisecond), p.wire); err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, p.pkt)
			p.pkt.frameNumber = len(pkts)
			if tamper {
				// The same packet with its last ICV bit flipped: tshark
				// must call it bad.
				bad := *p.pkt
				bad.tampered, bad.wantICVGood = true, false
				wire := append([]byte(nil), p.wire...)
				wire[len(wire)-1] ^= 1
				if bad.udpPayload != nil {
					bad.udpPayload = append([]byte(nil), bad.udpPayload...)
					bad.udpPayload[len(bad.udpPayload)-1] ^= 1
				}
				if err := w.WritePacket(ts.Add(time.Duration(len(pkts))*time.Millisecond), wire); err != nil {
					t.Fatal(err)
				}
				pkts = append(pkts, &bad)
				bad.frameNumber = len(pkts)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// One uat:esp_sa row per SA.
	fields := []string{"frame.number", "esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "esp.pad_len", "esp.protocol",
		"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "udp.checksum.status", "udp.payload"}
	args := []string{"-n", "-r", pcapPath,
		"-o", "esp.enable_encryption_decode:TRUE",
		"-o", "esp.enable_authentication_check:TRUE",
		"-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, s := range sas {
		args = append(args, "-o", uatRow(s))
	}
	for _, fl := range fields {
		args = append(args, "-e", fl)
	}
	cmd := exec.Command(tshark, args...)
	// A private configuration directory: a uat file in root's profile must
	// not add SAs or change preferences behind the test's back.
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	if os.Getenv("VIFSEC_KEEP_PCAP") != "" {
		keep := filepath.Join(os.TempDir(), "vifsec-tshark.pcap")
		if b, err := os.ReadFile(pcapPath); err == nil && os.WriteFile(keep, b, 0o644) == nil {
			q := make([]string, len(args))
			for i, a := range args {
				q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			}
			t.Logf("capture kept at %s; decode it with: tshark %s", keep, strings.Join(q, " "))
		}
	}

	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tshark printed %d lines for %d packets\n%s\n%s", len(lines), len(pkts), out, stderr.String())
	}
	var good, bad int
	for i, line := range lines {
		p := pkts[i]
		got := map[string]string{}
		cols := strings.Split(line, "\t")
		if len(cols) != len(fields) {
			t.Fatalf("frame %d: %d columns, want %d: %q", i+1, len(cols), len(fields), line)
		}
		for k, fl := range fields {
			got[fl] = cols[k]
		}
		name := fmt.Sprintf("frame %d (%s seq %#x%s)", p.frameNumber, p.sa.name, p.seq, map[bool]string{true: " tampered"}[p.tampered])
		check := func(field, want string) {
			t.Helper()
			if got[field] != want {
				t.Errorf("%s: %s = %q, want %q", name, field, got[field], want)
			}
		}
		check("frame.number", strconv.Itoa(p.frameNumber))
		check("esp.spi", fmt.Sprintf("0x%08x", p.sa.cfg.SPI))
		check("esp.sequence", strconv.FormatUint(p.seq&0xffffffff, 10))
		// Decrypted: the trailer we wrote and the exact UDP datagram inside.
		check("esp.pad_len", strconv.Itoa(p.padLen))
		check("esp.protocol", fmt.Sprintf("0x%02x", p.next))
		if e := p.sa.cfg.Encap; e != nil {
			// The outer UDP header of ESP in UDP comes first: our ports,
			// and a checksum tshark verifies over IPv6 (1: good; 0: bad
			// for the tampered copy, whose ESP bytes it covers) and finds
			// absent over IPv4 (3: PROTO_CHECKSUM_E_NOT_PRESENT, RFC 3948
			// §2.1 sends 0).
			outer := "3"
			if !p.sa.cfg.Src.Is4() {
				outer = map[bool]string{false: "1", true: "0"}[p.tampered]
			}
			check("udp.srcport", fmt.Sprintf("%d,%d", e.SrcPort, p.sport))
			check("udp.dstport", fmt.Sprintf("%d,%d", e.DstPort, p.dport))
			check("udp.checksum.status", outer+",1")
			check("udp.payload", hex.EncodeToString(p.udpPayload)+","+hex.EncodeToString(p.payload))
		} else {
			check("udp.srcport", strconv.Itoa(int(p.sport)))
			check("udp.dstport", strconv.Itoa(int(p.dport)))
			check("udp.checksum.status", "1") // PROTO_CHECKSUM_E_GOOD
			check("udp.payload", hex.EncodeToString(p.payload))
		}
		var v4src, v4dst, v6src, v6dst []string
		addAddr := func(src, dst netip.Addr) {
			if src.Is4() {
				v4src, v4dst = append(v4src, src.String()), append(v4dst, dst.String())
			} else {
				v6src, v6dst = append(v6src, src.String()), append(v6dst, dst.String())
			}
		}
		if p.sa.cfg.Mode == sa.ModeTunnel {
			addAddr(p.outerSrc, p.outerDst)
		}
		addAddr(p.innerSrc, p.innerDst)
		check("ip.src", strings.Join(v4src, ","))
		check("ip.dst", strings.Join(v4dst, ","))
		check("ipv6.src", strings.Join(v6src, ","))
		check("ipv6.dst", strings.Join(v6dst, ","))
		if p.wantICVGood {
			check("esp.icv_good", "1")
			check("esp.icv_bad", "0")
			good++
		} else {
			check("esp.icv_good", "0")
			check("esp.icv_bad", "1")
			bad++
		}
	}
	t.Logf("tshark decrypted %d packets on %d SAs to the exact datagrams: %d ICVs correct, %d bad as intended (tampered copies, ESN)",
		len(pkts), len(sas), good, bad)
}

type builtPkt struct {
	pkt  *tsharkPkt
	wire []byte
}

// buildTsharkPkt encapsulates one UDP datagram with a payload of size bytes
// unique to packet id.
func buildTsharkPkt(t *testing.T, s *tsharkSA, sc *sa.Scratch, rng *rand.Rand, id uint16, size int) builtPkt {
	t.Helper()
	isrc, idst := satest.V6A, satest.V6B
	if !s.innerV6 {
		isrc, idst = satest.V4A, satest.V4B
	}
	sport, dport := 40000+id, 50000+id
	buf := make([]byte, Headroom+size+100+Tailroom)
	n := satest.UDP(buf, Headroom, isrc, idst, sport, dport, size)
	l4 := 40
	if !s.innerV6 {
		l4 = 20
	}
	payload := buf[Headroom+l4+8 : Headroom+n]
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	copy(payload, fmt.Sprintf("%04x", id)) // distinct even if the PRNG repeated
	payload = append([]byte(nil), payload...)
	udpChecksum(buf[Headroom:Headroom+n], s.innerV6)

	st, en, d := Encap(s.out, sc, buf, Headroom, n)
	if d != drop.None {
		t.Fatalf("%s: Encap dropped: %v", s.name, d)
	}
	wire := append([]byte(nil), buf[st:en]...)

	// What ESP protects: the UDP datagram (transport) or the inner IP
	// packet (tunnel). The padding is the minimum RFC 4303 §2.4 allows.
	protected, next := 8+size, 17
	if s.cfg.Mode == sa.ModeTunnel {
		protected, next = n, 4
		if s.innerV6 {
			next = 41
		}
	}
	align := s.cfg.Enc.Align()
	p := &tsharkPkt{
		sa: s, sport: sport, dport: dport, payload: payload,
		padLen:   (align - (protected+2)%align) % align,
		next:     next,
		innerSrc: isrc, innerDst: idst,
		outerSrc: s.cfg.Src, outerDst: s.cfg.Dst,
	}
	c := Classify(wire)
	if want := map[bool]Kind{false: KindESP, true: KindESPInUDP}[s.udp]; c.Kind != want {
		t.Fatalf("%s: Classify found %v in our own packet, want %v", s.name, c.Kind, want)
	}
	p.seq = uint64(Header(wire[c.ESP:]).Seq())
	if s.udp {
		p.udpPayload = wire[c.UDP+8:]
	}
	if s.esn {
		p.seq |= 3 << 32 // from SetNextSeq; only the low half is on the wire
	}
	// tshark cannot add the ESN high half: see the file comment.
	p.wantICVGood = !s.esn
	return builtPkt{pkt: p, wire: wire}
}

// uatRow is s as one tshark uat:esp_sa preference.
func uatRow(s *tsharkSA) string {
	c := s.cfg
	proto := "IPv6"
	if c.Src.Is4() {
		proto = "IPv4"
	}
	hexKey := func(k []byte) string {
		if len(k) == 0 {
			return ""
		}
		return "0x" + hex.EncodeToString(k)
	}
	return fmt.Sprintf(`uat:esp_sa:"%s","%s","%s","0x%08x","%s","%s","%s","%s"`,
		proto, c.Src, c.Dst, c.SPI, c.Enc.TsharkName(), hexKey(c.EncKey), c.Integ.TsharkName(), hexKey(c.IntegKey))
}

func fam(v6 bool) string {
	if v6 {
		return "v6"
	}
	return "v4"
}

// udpChecksum fills in the UDP checksum of the IP packet pkt (one IPv4
// header without options, or an IPv6 header without extensions) per
// RFC 768 / RFC 8200 §8.1: the helper leaves it zero, which IPv6 forbids.
func udpChecksum(pkt []byte, v6 bool) {
	var pseudo []byte
	l4 := 20
	if v6 {
		l4 = 40
		pseudo = append(pseudo, pkt[8:40]...)
	} else {
		pseudo = append(pseudo, pkt[12:20]...)
	}
	u := pkt[l4:]
	pseudo = append(pseudo, 0, 0, byte(len(u)>>8), byte(len(u)), 0, 0, 0, 17)
	u[6], u[7] = 0, 0
	var sum uint32
	for _, b := range [][]byte{pseudo, u} {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	u[6], u[7] = byte(c>>8), byte(c)
}

package esp

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

type pair struct{ out, in *sa.SA }

// newPair makes the sending and receiving halves of one SA.
func newPair(t testing.TB, suite satest.Suite, mode sa.Mode, v6, esn bool) pair {
	src, dst := satest.V6A, satest.V6B
	if mode == sa.ModeTunnel {
		src, dst = satest.V6GwA, satest.V6GwB
		if !v6 {
			src, dst = satest.V4GwA, satest.V4GwB
		}
	} else if !v6 {
		src, dst = satest.V4A, satest.V4B
	}
	c := satest.Config("t", suite, mode, src, dst, 0x1000)
	c.ESN = esn
	co, ci := c, c
	co.Dir, ci.Dir = sa.DirOut, sa.DirIn
	return pair{satest.MustNew(co), satest.MustNew(ci)}
}

func inner(v6 bool) (src, dst netip.Addr) {
	if v6 {
		return satest.V6A, satest.V6B
	}
	return satest.V4A, satest.V4B
}

func TestRoundTrip(t *testing.T) {
	for _, suite := range satest.Suites() {
		for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
			for _, v6 := range []bool{true, false} {
				for _, esn := range []bool{false, true} {
					name := fmt.Sprintf("%v/%v/v6=%v/esn=%v", suite, mode, v6, esn)
					t.Run(name, func(t *testing.T) {
						p := newPair(t, suite, mode, v6, esn)
						var sc sa.Scratch
						for _, size := range []int{0, 1, 15, 16, 17, 100, 1400} {
							buf := make([]byte, Headroom+1500+Tailroom)
							s, d := inner(v6)
							n := satest.UDP(buf, Headroom, s, d, 1000, 2000, size)
							want := append([]byte(nil), buf[Headroom:Headroom+n]...)
							st, en, dr := Encap(p.out, &sc, buf, Headroom, n)
							if dr != drop.None {
								t.Fatalf("size %d: encap drop %v", size, dr)
							}
							if off, spi, ok := Locate(buf[st:en]); !ok || spi != 0x1000 {
								t.Fatalf("size %d: Locate = %d,%#x,%v", size, off, spi, ok)
							}
							if bytes.Contains(buf[st:en], want[len(want)-size/2:]) && size > 16 && suite.Enc != sa.EncNull {
								t.Fatalf("size %d: payload visible in ciphertext", size)
							}
							st2, en2, dr := Decap(p.in, &sc, buf, st, en-st)
							if dr != drop.None {
								t.Fatalf("size %d: decap drop %v", size, dr)
							}
							if !bytes.Equal(buf[st2:en2], want) {
								t.Fatalf("size %d: decap\n got %x\nwant %x", size, buf[st2:en2], want)
							}
						}
					})
				}
			}
		}
	}
}

func TestDecapDrops(t *testing.T) {
	suite := satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	p := newPair(t, suite, sa.ModeTransport, true, false)
	var sc sa.Scratch
	mk := func() ([]byte, int, int) {
		buf := make([]byte, Headroom+200+Tailroom)
		n := satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 40)
		st, en, d := Encap(p.out, &sc, buf, Headroom, n)
		if d != drop.None {
			t.Fatal(d)
		}
		return buf, st, en
	}
	buf, st, en := mk()
	cp := append([]byte(nil), buf...)
	if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.None {
		t.Fatal(d)
	}
	if _, _, d := Decap(p.in, &sc, cp, st, en-st); d != drop.Replay {
		t.Fatalf("replayed packet: %v, want replay", d)
	}
	buf, st, en = mk()
	genuine := append([]byte(nil), buf...)
	buf[en-1] ^= 1
	if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.AuthFailed {
		t.Fatalf("flipped ICV: %v, want auth-failed", d)
	}
	// A forged packet must not move the window: the genuine one still passes.
	buf = genuine
	if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.None {
		t.Fatalf("genuine packet after forgery: %v", d)
	}
	buf, st, _ = mk()
	if _, _, d := Decap(p.in, &sc, buf, st, 30); d != drop.Malformed {
		t.Fatalf("truncated: %v", d)
	}
}

func TestBadPadding(t *testing.T) {
	suite := satest.Suite{Enc: sa.EncNull, Integ: sa.IntegHMACSHA256}
	p := newPair(t, suite, sa.ModeTransport, true, false)
	var sc sa.Scratch
	buf := make([]byte, Headroom+200+Tailroom)
	n := satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 5) // 13-byte payload → 1 pad byte
	st, en, _ := Encap(p.out, &sc, buf, Headroom, n)
	// Corrupt the pad byte and re-seal with the same sequence number, so
	// the ICV is valid and only the padding is wrong.
	icv := p.out.ICVLen()
	buf[en-icv-3] = 9
	p.out.Seal(buf[st+header.IPv6Len:en], 1, &sc)
	if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.BadPadding {
		t.Fatalf("bad pad: %v, want bad-padding", d)
	}
}

func TestSequenceOverflow(t *testing.T) {
	suite := satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	p := newPair(t, suite, sa.ModeTransport, true, false)
	p.out.SetNextSeq(0xffffffff)
	var sc sa.Scratch
	buf := make([]byte, Headroom+200+Tailroom)
	n := satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 5)
	if _, _, d := Encap(p.out, &sc, buf, Headroom, n); d != drop.None {
		t.Fatalf("last sequence number: %v", d)
	}
	n = satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 5)
	if _, _, d := Encap(p.out, &sc, buf, Headroom, n); d != drop.SeqOverflow {
		t.Fatalf("after 2^32-1: %v, want seq-overflow", d)
	}
}

func TestESNHighBitsAuthenticated(t *testing.T) {
	for _, suite := range []satest.Suite{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, {Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256}} {
		p := newPair(t, suite, sa.ModeTransport, true, true)
		p.out.SetNextSeq(5<<32 | 7)
		var sc sa.Scratch
		buf := make([]byte, Headroom+200+Tailroom)
		n := satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 5)
		st, en, _ := Encap(p.out, &sc, buf, Headroom, n)
		if got := binary.BigEndian.Uint32(buf[st+header.IPv6Len+4:]); got != 7 {
			t.Fatalf("%v: wire seq %d, want low bits 7", suite, got)
		}
		// The receiver believes the high half is 0: the ICV cannot verify.
		if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.AuthFailed {
			t.Fatalf("%v: wrong high bits: %v, want auth-failed", suite, d)
		}
	}
}

func TestAllocs(t *testing.T) {
	for _, suite := range satest.Suites() {
		for _, esn := range []bool{false, true} {
			p := newPair(t, suite, sa.ModeTunnel, true, esn)
			var sc sa.Scratch
			buf := make([]byte, Headroom+1500+Tailroom)
			a := testing.AllocsPerRun(200, func() {
				n := satest.UDP(buf, Headroom, satest.V6A, satest.V6B, 1, 2, 1000)
				st, en, d := Encap(p.out, &sc, buf, Headroom, n)
				if d != drop.None {
					t.Fatal(d)
				}
				if _, _, d := Decap(p.in, &sc, buf, st, en-st); d != drop.None {
					t.Fatal(d)
				}
			})
			if a != 0 {
				t.Errorf("%v esn=%v: %v allocations per encap+decap", suite, esn, a)
			}
		}
	}
}

// TestTransportRefusesFragments: transport mode protects whole datagrams
// only (RFC 4301 §7), in both families; found by FuzzEncapDecap.
func TestTransportRefusesFragments(t *testing.T) {
	suite := satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	var sc sa.Scratch
	for _, v6 := range []bool{true, false} {
		p := newPair(t, suite, sa.ModeTransport, v6, false)
		buf := make([]byte, Headroom+200+Tailroom)
		s, d := inner(v6)
		n := satest.UDP(buf, Headroom, s, d, 1, 2, 40)
		pkt := buf[Headroom : Headroom+n]
		if v6 {
			// Insert a fragment header (M=1) in front of the UDP header.
			copy(pkt[48:], pkt[40:n])
			pkt[6] = header.ProtoFragment
			pkt[40], pkt[41], pkt[42], pkt[43] = 17, 0, 0, 1
			binary.BigEndian.PutUint16(pkt[4:], uint16(n+8-40))
			n += 8
		} else {
			pkt[6] |= 0x20 // MF
		}
		if _, _, dr := Encap(p.out, &sc, buf, Headroom, n); dr != drop.Fragment {
			t.Errorf("v6=%v: fragment encap: %v, want fragment", v6, dr)
		}
	}
}

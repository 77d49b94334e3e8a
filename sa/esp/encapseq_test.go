package esp

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// A block reserved at once and sealed on several goroutines, in no
// particular order: each packet carries the number it was given, and the
// receiver, taking them in number order, accepts every one.
func TestEncapSeqConcurrent(t *testing.T) {
	for _, suite := range satest.Suites() {
		t.Run(suite.String(), func(t *testing.T) {
			p := newPair(t, suite, sa.ModeTunnel, true, true)
			const k = 45
			first, granted, d := p.out.ReserveSeq(k)
			if d != drop.None || granted != k {
				t.Fatalf("ReserveSeq: %d, %v", granted, d)
			}
			bufs := make([][]byte, k)
			want := make([][]byte, k)
			spans := make([][2]int, k)
			src, dst := inner(true)
			for i := range bufs {
				bufs[i] = make([]byte, Headroom+1500+Tailroom)
				n := satest.UDP(bufs[i], Headroom, src, dst, 1000, uint16(i), 1000)
				want[i] = bytes.Clone(bufs[i][Headroom : Headroom+n])
				spans[i] = [2]int{Headroom, n}
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					var sc sa.Scratch
					for i := k - 1 - g; i >= 0; i -= 4 {
						st, en, d := EncapSeq(p.out, &sc, bufs[i], spans[i][0], spans[i][1], first+uint64(i))
						if d != drop.None {
							t.Errorf("packet %d: %v", i, d)
							return
						}
						spans[i] = [2]int{st, en - st}
					}
				})
			}
			wg.Wait()
			var sc sa.Scratch
			for i := range bufs {
				_, _, ok := Locate(bufs[i][spans[i][0] : spans[i][0]+spans[i][1]])
				esp := bufs[i][spans[i][0]+40:] // tunnel mode, outer IPv6
				if !ok || binary.BigEndian.Uint32(esp[4:]) != uint32(first+uint64(i)) {
					t.Fatalf("packet %d: wire sequence %d, want %d", i, binary.BigEndian.Uint32(esp[4:]), uint32(first+uint64(i)))
				}
				st, en, d := Decap(p.in, &sc, bufs[i], spans[i][0], spans[i][1])
				if d != drop.None {
					t.Fatalf("packet %d: receiver drops it: %v", i, d)
				}
				if !bytes.Equal(bufs[i][st:en], want[i]) {
					t.Fatalf("packet %d: decapsulated packet differs", i)
				}
			}
			if got := p.out.Stats.Packets.Load(); got != k {
				t.Errorf("lifetime counted %d packets, want %d", got, k)
			}
		})
	}
}

// Encap is EncapSeq with the next number: with the same key and number
// (AEAD: the IV is the number) the bytes are the same.
func TestEncapIsEncapSeq(t *testing.T) {
	suite := satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	a, b := newPair(t, suite, sa.ModeTransport, false, false), newPair(t, suite, sa.ModeTransport, false, false)
	var sc sa.Scratch
	for seq := uint64(1); seq <= 3; seq++ {
		x, y := make([]byte, Headroom+600+Tailroom), make([]byte, Headroom+600+Tailroom)
		src, dst := inner(false)
		n := satest.UDP(x, Headroom, src, dst, 1, 2, 500)
		copy(y, x)
		s1, e1, d1 := Encap(a.out, &sc, x, Headroom, n)
		s2, e2, d2 := EncapSeq(b.out, &sc, y, Headroom, n, seq)
		if d1 != drop.None || d2 != drop.None || !bytes.Equal(x[s1:e1], y[s2:e2]) {
			t.Fatalf("seq %d: Encap and EncapSeq differ (%v, %v)", seq, d1, d2)
		}
	}
}

func TestEncapSeqAllocs(t *testing.T) {
	p := newPair(t, satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, sa.ModeTransport, true, true)
	var sc sa.Scratch
	buf := make([]byte, Headroom+1500+Tailroom)
	src, dst := inner(true)
	seq := uint64(0)
	if a := testing.AllocsPerRun(100, func() {
		n := satest.UDP(buf, Headroom, src, dst, 1, 2, 1000)
		seq++
		EncapSeq(p.out, &sc, buf, Headroom, n, seq)
	}); a != 0 {
		t.Errorf("EncapSeq: %v allocs, want 0", a)
	}
}

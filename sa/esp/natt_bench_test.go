package esp_test

// ESP in UDP (RFC 3948) against plain ESP, same suite, same packet, same
// method as internal/bench/espbench (a ring of prepared buffers, only the
// transform timed):
//
//	go test -run '^$' -bench NATT ./sa/esp/

import (
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
)

func BenchmarkNATT(b *testing.B) {
	const size = 1400
	for _, suite := range []satest.Suite{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, {Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256}} {
		for _, v6 := range []bool{false, true} {
			for _, udp := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/%s/%d", suiteName(suite), map[bool]string{false: "v4", true: "v6"}[v6],
					map[bool]string{false: "plain", true: "udp"}[udp], size)
				b.Run("encap/"+name, func(b *testing.B) { benchNATT(b, suite, v6, udp, size, false) })
				b.Run("decap/"+name, func(b *testing.B) { benchNATT(b, suite, v6, udp, size, true) })
			}
		}
	}
}

func suiteName(s satest.Suite) string {
	if s.Enc.IsAEAD() {
		return s.Enc.String()
	}
	return s.Enc.String() + "+" + s.Integ.String()
}

// benchNATT times Encap (or Decap) of a transport-mode UDP packet with a
// size-byte payload.
func benchNATT(b *testing.B, suite satest.Suite, v6, udp bool, size int, decap bool) {
	src, dst := satest.V4A, satest.V4B
	if v6 {
		src, dst = satest.V6A, satest.V6B
	}
	c := satest.Config("bench", suite, sa.ModeTransport, src, dst, 0x1000)
	if udp {
		c.Encap = &sa.UDPEncap{SrcPort: esp.NATTPort, DstPort: esp.NATTPort}
	}
	co, ci := c, c
	co.Dir, ci.Dir = sa.DirOut, sa.DirIn
	out, in := satest.MustNew(co), satest.MustNew(ci)
	clear := make([]byte, 40+8+size)
	n := satest.UDP(clear, 0, src, dst, 1000, 2000, size)
	clear = clear[:n]

	const k = 64
	bufs := make([][]byte, k)
	starts, ends := make([]int, k), make([]int, k)
	for i := range bufs {
		bufs[i] = make([]byte, esp.Headroom+n+esp.Tailroom)
	}
	var sc sa.Scratch
	prep := func(i int) {
		copy(bufs[i][esp.Headroom:], clear)
		starts[i], ends[i] = esp.Headroom, esp.Headroom+n
		if decap {
			st, en, d := esp.Encap(out, &sc, bufs[i], esp.Headroom, n)
			if d != drop.None {
				b.Fatal(d)
			}
			starts[i], ends[i] = st, en
		}
	}
	op := func(i int) {
		var d drop.Reason
		if decap {
			_, _, d = esp.Decap(in, &sc, bufs[i], starts[i], ends[i]-starts[i])
		} else {
			_, _, d = esp.Encap(out, &sc, bufs[i], starts[i], ends[i]-starts[i])
		}
		if d != drop.None {
			b.Fatal(d)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		m := min(k, b.N-done)
		for i := 0; i < m; i++ {
			prep(i)
		}
		b.StartTimer()
		for i := 0; i < m; i++ {
			op(i)
		}
		b.StopTimer()
		done += m
	}
}

package vxlan

import (
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"testing"
)

// BenchmarkEncap and BenchmarkDecap: ns per frame for 64, 1400 and
// 9000-byte inner frames. IPv6 includes the UDP checksum over the whole
// frame, the dominant cost for big frames.
func BenchmarkEncap(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{64, 1400, 9000} {
			b.Run(name(v6, size), func(b *testing.B) {
				o := outer4(42)
				if v6 {
					o = outer6(42)
				}
				inner := pingFrame(false, 0, 1, 1, make([]byte, size-14-20-8))
				buf := place(inner, 0)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, d := Encap(o, 50000, buf, Headroom, size); d != drop.None {
						b.Fatal(d)
					}
				}
			})
		}
	}
}

func BenchmarkDecap(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{64, 1400, 9000} {
			b.Run(name(v6, size), func(b *testing.B) {
				o := outer4(42)
				if v6 {
					o = outer6(42)
				}
				inner := pingFrame(false, 0, 1, 1, make([]byte, size-14-20-8))
				buf := place(inner, 0)
				start, _ := Encap(o, 50000, buf, Headroom, size)
				l := remoteLocal()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, d := Decap(l, buf, start, len(buf)-start); d != drop.None {
						b.Fatal(d)
					}
				}
			})
		}
	}
}

func name(v6 bool, size int) string {
	if v6 {
		return fmt.Sprintf("ipv6/%d", size)
	}
	return fmt.Sprintf("ipv4/%d", size)
}

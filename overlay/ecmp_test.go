package overlay_test

// The entropy measurement of issue 5, over the real code: inner frames
// go through entropy.Hasher.SourcePort and vxlan.Encap, the outer frame
// through vxlan.Decap, and the outer source port Decap reports is what
// an underlay switch would hash. Run it with figures:
//
//	go test -run TestECMPEntropy -v ./overlay/

import (
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/overlay/entropy"
	"github.com/vifsec/vifsec/overlay/vxlan"
)

const (
	nFlows   = 1000
	nBuckets = 16
	bound    = 1.25 // the max/mean acceptance bound
	vni      = 42
)

var (
	vtepLocal  = netip.MustParseAddr("198.51.100.1")
	vtepRemote = netip.MustParseAddr("198.51.100.2")
	outer      = &vxlan.Outer{
		SrcMAC: [6]byte{0x02, 0, 0x5e, 0x10, 0, 1}, DstMAC: [6]byte{0x02, 0, 0x5e, 0x10, 0, 2},
		Src: vtepLocal, Dst: vtepRemote, VNI: vni,
	}
	remote = &vxlan.Local{Addr4: vtepRemote}
)

// innerFrame is an Ethernet frame between the same two VMs (192.0.2.1 →
// 192.0.2.2) carrying an IPv4 packet of proto with l4 bytes.
func innerFrame(proto byte, l4 []byte) []byte {
	f := make([]byte, 14+20, 14+20+len(l4))
	copy(f, []byte{0x02, 0, 0x5e, 0x10, 1, 2, 0x02, 0, 0x5e, 0x10, 1, 1, 0x08, 0x00})
	h := f[14:]
	h[0], h[6], h[8], h[9] = 0x45, 0x40, 64, proto
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(l4)))
	copy(h[12:20], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	return append(f, l4...)
}

// espFrame is an ESP packet of SA spi (sequence number 1, 64 bytes of
// ciphertext stand-in).
func espFrame(spi uint32) []byte {
	l4 := binary.BigEndian.AppendUint32(nil, spi)
	l4 = binary.BigEndian.AppendUint32(l4, 1)
	return innerFrame(50, append(l4, make([]byte, 64)...))
}

// tcpFrame is a TCP segment from source port sport to 443.
func tcpFrame(sport uint16) []byte {
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], 443)
	l4[12] = 5 << 4
	return innerFrame(6, l4)
}

type workload struct {
	name   string
	frames [][]byte
}

func workloads() []workload {
	seq, rnd, tcp := make([][]byte, nFlows), make([][]byte, nFlows), make([][]byte, nFlows)
	r := rand.New(rand.NewPCG(5, 7348)) // fixed: the same random SPIs every run
	spis := map[uint32]bool{}
	for i := range nFlows {
		seq[i] = espFrame(0x1000 + uint32(i))
		spi := r.Uint32()
		for spi < 256 || spis[spi] { // RFC 4303 §2.1: 1–255 reserved
			spi = r.Uint32()
		}
		spis[spi] = true
		rnd[i] = espFrame(spi)
		tcp[i] = tcpFrame(uint16(32768 + i))
	}
	return []workload{
		{"ESP, 1000 SAs, sequential SPIs", seq},
		{"ESP, 1000 SAs, random SPIs", rnd},
		{"clear TCP, 1000 flows", tcp},
	}
}

// outerPorts encapsulates every frame with the port portOf gives it and
// returns the outer source ports Decap reads back.
func outerPorts(t testing.TB, frames [][]byte, portOf func([]byte) uint16) []uint16 {
	buf := make([]byte, 256)
	ports := make([]uint16, len(frames))
	for i, f := range frames {
		n := copy(buf[vxlan.Headroom:], f)
		start, d := vxlan.Encap(outer, portOf(f), buf, vxlan.Headroom, n)
		if d != drop.None {
			t.Fatalf("Encap: %v", d)
		}
		r, d := vxlan.Decap(remote, buf, start, vxlan.Headroom+n-start)
		if d != drop.None || r.VNI != vni || r.Src != vtepLocal {
			t.Fatalf("Decap: %v %+v", d, r)
		}
		ports[i] = r.SrcPort
	}
	return ports
}

// Two ways an underlay switch picks one of 16 ECMP next hops.
var schemes = []struct {
	name   string
	bucket func(sport uint16) int
}{
	{"port mod 16", func(sport uint16) int { return int(sport) % nBuckets }},
	{"CRC32 5-tuple mod 16", func(sport uint16) int {
		// The outer 5-tuple as a switch's hash unit reads it: source and
		// destination address, protocol, source and destination port.
		var k [13]byte
		s, d := vtepLocal.As4(), vtepRemote.As4()
		copy(k[0:4], s[:])
		copy(k[4:8], d[:])
		k[8] = 17
		binary.BigEndian.PutUint16(k[9:11], sport)
		binary.BigEndian.PutUint16(k[11:13], vxlan.DefaultPort)
		return int(crc32.ChecksumIEEE(k[:]) % nBuckets)
	}},
}

// maxOverMean is the fullest bucket's count over the mean count.
func maxOverMean(ports []uint16, bucket func(uint16) int) (float64, [nBuckets]int) {
	var b [nBuckets]int
	for _, p := range ports {
		b[bucket(p)]++
	}
	return float64(slices.Max(b[:])) / (float64(len(ports)) / nBuckets), b
}

// naivePort is the scheme vifsec must beat: a hash of the inner 5-tuple
// as a non-ESP-aware VTEP computes it (addresses, protocol and, for TCP
// and UDP only, ports), here FNV-1a into the same port range. For ESP
// every SA of a VM pair is one "flow".
func naivePort(f []byte) uint16 {
	ip := f[14:]
	h := fnv.New64a()
	h.Write(ip[12:20])
	h.Write(ip[9:10])
	if ip[9] == 6 || ip[9] == 17 {
		h.Write(ip[20:24])
	}
	return entropy.PortMin + uint16(h.Sum64()>>50)
}

// testKey is the SipHash paper's key (00 01 … 0f), fixed before any
// measurement so the figures are reproducible; it was not searched for.
var testKey = [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// singleDrawBound guards one key's figures against gross failure (a hash
// that drops SPI bits puts sequential SPIs on a few ports: max/mean 2 and
// more). It is not the 1.25: one key's max/mean is a single draw
// whose ideal distribution has a median of 1.22 and exceeds 1.25 about
// 30% of the time (see TestECMPEntropyKeys, which holds the hash to the
// issue's bound where it is meaningful, the median over keys). 1.5 is
// beyond the ideal's 99.9th percentile.
const singleDrawBound = 1.5

// TestECMPEntropy measures the bucket balance of 1,000 SAs (sequential
// and random SPIs) and 1,000 TCP flows between the same two VMs, for the
// naive 5-tuple hash and for vifsec's (entropy.Hasher with testKey).
func TestECMPEntropy(t *testing.T) {
	h := entropy.NewHasher(testKey)
	var report strings.Builder
	fmt.Fprintf(&report, "max/mean over %d ECMP buckets, %d flows per workload (bound %.2f; 1.00 = perfect):\n", nBuckets, nFlows, bound)
	fmt.Fprintf(&report, "  %-32s %-22s %8s %8s %8s\n", "workload", "bucket scheme", "naive", "vifsec", "distinct ports")
	for _, w := range workloads() {
		naive := outerPorts(t, w.frames, naivePort)
		ours := outerPorts(t, w.frames, func(f []byte) uint16 { return h.SourcePort(f, vni) })
		distinct := len(slices.Compact(slices.Sorted(slices.Values(ours))))
		// 1,000 flows into 16,384 ports: about 970 distinct by the
		// birthday bound; far fewer means input bits are being lost.
		if distinct < 940 {
			t.Errorf("%s: %d distinct ports of %d flows", w.name, distinct, nFlows)
		}
		for _, s := range schemes {
			rn, _ := maxOverMean(naive, s.bucket)
			ro, b := maxOverMean(ours, s.bucket)
			mark := ""
			if ro > bound {
				mark = " (> 1.25)"
			}
			fmt.Fprintf(&report, "  %-32s %-22s %8.3f %8.3f %8d%s\n", w.name, s.name, rn, ro, distinct, mark)
			t.Logf("%s, %s: vifsec buckets %v", w.name, s.name, b)
			if ro > singleDrawBound {
				t.Errorf("%s, %s: max/mean %.3f > %.2f (buckets %v)", w.name, s.name, ro, singleDrawBound, b)
			}
			if strings.HasPrefix(w.name, "ESP") && rn != nBuckets {
				t.Errorf("%s, %s: naive max/mean %.3f, expected the collapse to one bucket (%d)", w.name, s.name, rn, nBuckets)
			}
		}
	}
	t.Log("\n" + report.String())
}

// TestECMPEntropyKeys repeats the measurement over many random keys, as
// production hosts have them, next to an ideal hash (ports drawn
// uniformly at random). One key's figure is one draw from a distribution:
// with 1,000 flows in 16 buckets even an ideal hash exceeds max/mean 1.25
// about 30% of the time (balls into bins: the mean is 62.5, the standard
// deviation 7.7, and the fullest of 16 buckets sits about 1.8 deviations
// above the mean). What a hash can be held to is matching the ideal: the
// median at or below 1.25 and the tail no heavier than the ideal's.
func TestECMPEntropyKeys(t *testing.T) {
	const keys = 300 // ~0.3 s; fewer would make the median test noisy
	ws := workloads()
	ideal := rand.New(rand.NewPCG(1, 2))
	var report strings.Builder
	fmt.Fprintf(&report, "max/mean over %d random keys (ideal: uniformly random ports, same count):\n", keys)
	fmt.Fprintf(&report, "  %-32s %-22s %15s %15s %15s\n", "workload", "bucket scheme", "median (ideal)", "p95 (ideal)", ">1.25 (ideal)")
	for _, w := range ws {
		for _, s := range schemes {
			var ours, ref []float64
			for range keys {
				h := entropy.NewHasher(entropy.RandomKey())
				ports := outerPorts(t, w.frames, func(f []byte) uint16 { return h.SourcePort(f, vni) })
				r, _ := maxOverMean(ports, s.bucket)
				ours = append(ours, r)
				for i := range ports {
					ports[i] = entropy.PortMin + uint16(ideal.IntN(entropy.PortMax-entropy.PortMin+1))
				}
				r, _ = maxOverMean(ports, s.bucket)
				ref = append(ref, r)
			}
			slices.Sort(ours)
			slices.Sort(ref)
			med, p95 := ours[len(ours)/2], ours[len(ours)*95/100]
			over := func(x []float64) float64 {
				n := 0
				for _, v := range x {
					if v > bound {
						n++
					}
				}
				return float64(n) / float64(len(x))
			}
			fmt.Fprintf(&report, "  %-32s %-22s %6.3f (%6.3f) %6.3f (%6.3f) %5.0f%% (%4.0f%%)\n",
				w.name, s.name, med, ref[len(ref)/2], p95, ref[len(ref)*95/100], 100*over(ours), 100*over(ref))
			if med > bound {
				t.Errorf("%s, %s: median max/mean %.3f > %.2f", w.name, s.name, med, bound)
			}
			// The ideal's p95 is about 1.35; allow sampling noise, not a
			// worse-than-random hash.
			if p95 > ref[len(ref)*95/100]+0.06 {
				t.Errorf("%s, %s: p95 %.3f, ideal %.3f: worse than a random function", w.name, s.name, p95, ref[len(ref)*95/100])
			}
		}
	}
	t.Log("\n" + report.String())
}

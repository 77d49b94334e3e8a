// Package espbench holds the ESP benchmarks: esp.Encap and esp.Decap, and
// the bare cipher they are compared with, on the same payload sizes in the
// same run. The benchmark bodies are plain func(*testing.B) so that both
// `go test -bench` (sa/esp/bench_test.go) and `make bench-esp`
// (internal/bench/cmd/vifsec-bench, through testing.Benchmark) run the
// very same code.
//
// It must not assert anything about timing: it measures and reports.
//
// # Method (what is fair)
//
// Encap and Decap work in place and consume their input: an encapsulated
// buffer is no longer a clear packet, a decapsulated one no longer ESP, and
// a second Decap of the same sequence number is a replay. So every
// benchmark, ESP and bare alike, runs over a ring of k buffers:
//
//  1. with the timer stopped, prepare the k inputs (copy the clear packet
//     in; for Decap/Open, encapsulate or seal them with increasing
//     sequence numbers, so each one is new to the replay window);
//  2. with the timer running, process the k buffers;
//  3. repeat until b.N.
//
// No per-op copy is timed, so nothing has to be subtracted, and both sides
// find their inputs in the same cache state (k is sized to keep the ring
// within ~128 KiB, i.e. in L2, as a batch just read from a queue would be).
// The bare cipher is given the UDP payload only (SIZE bytes; CBC rounds up
// to its block) with the 8-byte ESP header as AAD, a precomputed counter
// nonce or IV and no framing: everything ESP adds — the UDP header and
// trailer bytes it encrypts, IV generation, padding, header moves, the
// replay window, lifetimes and counters, the per-SA lock of CBC suites —
// counts as ESP overhead in the ratio.
package espbench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"hash"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes are the UDP payload sizes benchmarked.
var Sizes = []int{64, 512, 1400, 9000}

// DefaultSuites are the suites `make bench-esp` reports.
func DefaultSuites() []satest.Suite {
	return []satest.Suite{
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone},
		{Enc: sa.EncAES256GCM, Integ: sa.IntegNone},
		{Enc: sa.EncChaCha20Poly1305, Integ: sa.IntegNone},
		{Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256},
		{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256},
		{Enc: sa.Enc3DESCBC, Integ: sa.IntegHMACSHA1},
		{Enc: sa.EncNull, Integ: sa.IntegHMACSHA256},
	}
}

// Name is the suite as the report prints it: the cipher alone for an
// AEAD, cipher/integrity otherwise.
func Name(s satest.Suite) string {
	if s.Enc.IsAEAD() {
		return s.Enc.String()
	}
	return s.String()
}

// ringBytes bounds the memory of one ring of buffers (see the package
// comment).
const ringBytes = 128 << 10

func ringLen(bufLen int) int { return min(max(ringBytes/bufLen, 8), 512) }

// ring runs op over k prepared buffers at a time, timing only op.
func ring(b *testing.B, k int, prep, op func(i int)) {
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(k, b.N-done)
		for i := 0; i < n; i++ {
			prep(i)
		}
		b.StartTimer()
		for i := 0; i < n; i++ {
			op(i)
		}
		b.StopTimer()
		done += n
	}
}

// pair is the two ends of one transport-mode IPv6 SA.
type pair struct {
	out, in *sa.SA
}

func newPair(suite satest.Suite) pair {
	c := satest.Config("bench", suite, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	co, ci := c, c
	co.Dir, ci.Dir = sa.DirOut, sa.DirIn
	return pair{satest.MustNew(co), satest.MustNew(ci)}
}

// clearPacket is the IPv6/UDP packet with size bytes of payload.
func clearPacket(size int) []byte {
	buf := make([]byte, 40+8+size)
	n := satest.UDP(buf, 0, satest.V6A, satest.V6B, 4500, 4500, size)
	return buf[:n]
}

// Encap benchmarks esp.Encap of an IPv6/UDP packet with size bytes of
// payload, transport mode.
func Encap(suite satest.Suite, size int) func(*testing.B) {
	p := newPair(suite)
	pkt := clearPacket(size)
	bufLen := esp.Headroom + len(pkt) + esp.Tailroom
	bufs := make([][]byte, ringLen(bufLen))
	for i := range bufs {
		bufs[i] = make([]byte, bufLen)
	}
	var sc sa.Scratch
	return func(b *testing.B) {
		b.SetBytes(int64(size))
		ring(b, len(bufs), func(i int) {
			copy(bufs[i][esp.Headroom:], pkt)
		}, func(i int) {
			if _, _, d := esp.Encap(p.out, &sc, bufs[i], esp.Headroom, len(pkt)); d != drop.None {
				panic(fmt.Sprintf("espbench: %s %d: Encap dropped: %v", Name(suite), size, d))
			}
		})
	}
}

// Decap benchmarks esp.Decap of packets Encap made (untimed) with
// increasing sequence numbers.
func Decap(suite satest.Suite, size int) func(*testing.B) {
	p := newPair(suite)
	pkt := clearPacket(size)
	bufLen := esp.Headroom + len(pkt) + esp.Tailroom
	bufs := make([][]byte, ringLen(bufLen))
	for i := range bufs {
		bufs[i] = make([]byte, bufLen)
	}
	starts := make([]int, len(bufs))
	lens := make([]int, len(bufs))
	var sc sa.Scratch
	return func(b *testing.B) {
		b.SetBytes(int64(size))
		ring(b, len(bufs), func(i int) {
			copy(bufs[i][esp.Headroom:], pkt)
			st, en, d := esp.Encap(p.out, &sc, bufs[i], esp.Headroom, len(pkt))
			if d != drop.None {
				panic(fmt.Sprintf("espbench: %s %d: Encap dropped: %v", Name(suite), size, d))
			}
			starts[i], lens[i] = st, en-st
		}, func(i int) {
			if _, _, d := esp.Decap(p.in, &sc, bufs[i], starts[i], lens[i]); d != drop.None {
				panic(fmt.Sprintf("espbench: %s %d: Decap dropped: %v", Name(suite), size, d))
			}
		})
	}
}

// bare is the suite's cipher without ESP: an AEAD, or CBC (or nothing,
// for null) followed by an HMAC truncated to the ICV length.
type bare struct {
	aead cipher.AEAD

	cbcEnc, cbcDec cipher.BlockMode
	mac            hash.Hash
	icvLen         int
	macSum         [64]byte
	iv             [16]byte

	aad   [8]byte
	nonce [12]byte
	ctr   uint64
}

type ivSetter interface{ SetIV([]byte) }

func newBare(suite satest.Suite) *bare {
	c := satest.Config("bench", suite, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	bb := &bare{}
	binary.BigEndian.PutUint32(bb.aad[:4], 0x1000)
	var err error
	switch suite.Enc {
	case sa.EncAES128GCM, sa.EncAES256GCM:
		k := c.EncKey[:len(c.EncKey)-4]
		blk, e := aes.NewCipher(k)
		if e != nil {
			panic(e)
		}
		bb.aead, err = cipher.NewGCM(blk)
	case sa.EncChaCha20Poly1305:
		bb.aead, err = chacha20poly1305.New(c.EncKey[:32])
	case sa.EncAES128CBC, sa.EncAES256CBC, sa.Enc3DESCBC:
		var blk cipher.Block
		if suite.Enc == sa.Enc3DESCBC {
			blk, err = des.NewTripleDESCipher(c.EncKey)
		} else {
			blk, err = aes.NewCipher(c.EncKey)
		}
		if err == nil {
			iv := make([]byte, blk.BlockSize())
			bb.cbcEnc, bb.cbcDec = cipher.NewCBCEncrypter(blk, iv), cipher.NewCBCDecrypter(blk, iv)
		}
	case sa.EncNull:
	default:
		panic(fmt.Sprintf("espbench: no bare cipher for %v", suite.Enc))
	}
	if err != nil {
		panic(err)
	}
	if !suite.Enc.IsAEAD() {
		var h func() hash.Hash
		switch suite.Integ {
		case sa.IntegHMACSHA1:
			h = sha1.New
		case sa.IntegHMACSHA256:
			h = sha256.New
		case sa.IntegHMACSHA384:
			h = sha512.New384
		case sa.IntegHMACSHA512:
			h = sha512.New
		default:
			panic(fmt.Sprintf("espbench: no bare MAC for %v", suite.Integ))
		}
		bb.mac = hmac.New(h, c.IntegKey)
		bb.icvLen = suite.Integ.ICVLen()
	}
	return bb
}

// ctLen is the ciphertext length for a payload of size bytes: CBC rounds
// up to its block.
func (bb *bare) ctLen(size int) int {
	if bb.cbcEnc != nil {
		bs := bb.cbcEnc.BlockSize()
		return (size + bs - 1) / bs * bs
	}
	return size
}

func (bb *bare) overhead() int {
	if bb.aead != nil {
		return bb.aead.Overhead()
	}
	return bb.icvLen
}

// seal protects buf[:ctLen] in place and appends the tag; it returns the
// nonce or IV counter it used.
func (bb *bare) seal(buf []byte, ctLen int) uint64 {
	bb.ctr++
	if bb.aead != nil {
		binary.BigEndian.PutUint64(bb.nonce[4:], bb.ctr)
		bb.aead.Seal(buf[:0], bb.nonce[:], buf[:ctLen], bb.aad[:])
		return bb.ctr
	}
	if bb.cbcEnc != nil {
		binary.BigEndian.PutUint64(bb.iv[:8], bb.ctr)
		bb.cbcEnc.(ivSetter).SetIV(bb.iv[:bb.cbcEnc.BlockSize()])
		bb.cbcEnc.CryptBlocks(buf[:ctLen], buf[:ctLen])
	}
	bb.mac.Reset()
	bb.mac.Write(buf[:ctLen])
	copy(buf[ctLen:ctLen+bb.icvLen], bb.mac.Sum(bb.macSum[:0]))
	return bb.ctr
}

// open verifies and decrypts buf[:ctLen+overhead] in place.
func (bb *bare) open(buf []byte, ctLen int, ctr uint64) bool {
	if bb.aead != nil {
		binary.BigEndian.PutUint64(bb.nonce[4:], ctr)
		_, err := bb.aead.Open(buf[:0], bb.nonce[:], buf[:ctLen+bb.aead.Overhead()], bb.aad[:])
		return err == nil
	}
	bb.mac.Reset()
	bb.mac.Write(buf[:ctLen])
	if subtle.ConstantTimeCompare(bb.mac.Sum(bb.macSum[:0])[:bb.icvLen], buf[ctLen:ctLen+bb.icvLen]) != 1 {
		return false
	}
	if bb.cbcDec != nil {
		binary.BigEndian.PutUint64(bb.iv[:8], ctr)
		bb.cbcDec.(ivSetter).SetIV(bb.iv[:bb.cbcDec.BlockSize()])
		bb.cbcDec.CryptBlocks(buf[:ctLen], buf[:ctLen])
	}
	return true
}

func bareRing(suite satest.Suite, size int) (*bare, [][]byte, []byte, int) {
	bb := newBare(suite)
	ct := bb.ctLen(size)
	plain := make([]byte, ct)
	for i := range plain {
		plain[i] = byte(i*31 + 7)
	}
	bufLen := ct + bb.overhead()
	bufs := make([][]byte, ringLen(bufLen+esp.Headroom+esp.Tailroom)) // same k as ESP's ring
	for i := range bufs {
		bufs[i] = make([]byte, bufLen)
	}
	return bb, bufs, plain, ct
}

// Seal benchmarks the bare cipher protecting size bytes: AEAD Seal, or CBC
// encryption then HMAC.
func Seal(suite satest.Suite, size int) func(*testing.B) {
	bb, bufs, plain, ct := bareRing(suite, size)
	return func(b *testing.B) {
		b.SetBytes(int64(size))
		ring(b, len(bufs), func(i int) {
			copy(bufs[i], plain)
		}, func(i int) {
			bb.seal(bufs[i], ct)
		})
	}
}

// Open benchmarks the bare cipher verifying and decrypting what seal
// produced (untimed): AEAD Open, or HMAC check then CBC decryption.
func Open(suite satest.Suite, size int) func(*testing.B) {
	bb, bufs, plain, ct := bareRing(suite, size)
	ctrs := make([]uint64, len(bufs))
	return func(b *testing.B) {
		b.SetBytes(int64(size))
		ring(b, len(bufs), func(i int) {
			copy(bufs[i], plain)
			ctrs[i] = bb.seal(bufs[i], ct)
		}, func(i int) {
			if !bb.open(bufs[i], ct, ctrs[i]) {
				panic(fmt.Sprintf("espbench: %s %d: bare open failed", Name(suite), size))
			}
		})
	}
}

// Result is one line of the report.
type Result struct {
	Suite                    satest.Suite
	Size                     int
	Encap, Decap, Seal, Open testing.BenchmarkResult
	EncapNs, DecapNs         float64
	SealNs, OpenNs           float64
	EncapRatio, DecapRatio   float64
	AllocsPerEncapDecap      int64
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

// Run measures one suite and size with testing.Benchmark.
func Run(suite satest.Suite, size int) Result {
	r := Result{Suite: suite, Size: size}
	r.Encap = testing.Benchmark(Encap(suite, size))
	r.Decap = testing.Benchmark(Decap(suite, size))
	r.Seal = testing.Benchmark(Seal(suite, size))
	r.Open = testing.Benchmark(Open(suite, size))
	r.EncapNs, r.DecapNs = nsPerOp(r.Encap), nsPerOp(r.Decap)
	r.SealNs, r.OpenNs = nsPerOp(r.Seal), nsPerOp(r.Open)
	if r.EncapNs > 0 {
		r.EncapRatio = r.SealNs / r.EncapNs
	}
	if r.DecapNs > 0 {
		r.DecapRatio = r.OpenNs / r.DecapNs
	}
	// Whole allocations per op, as `go test -benchmem` reports them: a
	// stray runtime allocation in a million operations is not the data
	// path's (TestAllocs in sa/esp proves that exactly).
	r.AllocsPerEncapDecap = r.Encap.AllocsPerOp() + r.Decap.AllocsPerOp()
	return r
}

// String is the report line:
//
//	esp ALG SIZE encap_ns=N decap_ns=N aead_seal_ns=N aead_open_ns=N encap_ratio=R decap_ratio=R allocs=N
//
// aead_seal/aead_open are the bare cipher (for CBC suites: CBC and HMAC).
func (r Result) String() string {
	return fmt.Sprintf("esp %s %d encap_ns=%.0f decap_ns=%.0f aead_seal_ns=%.0f aead_open_ns=%.0f encap_ratio=%.2f decap_ratio=%.2f allocs=%d",
		Name(r.Suite), r.Size, r.EncapNs, r.DecapNs, r.SealNs, r.OpenNs, r.EncapRatio, r.DecapRatio, r.AllocsPerEncapDecap)
}

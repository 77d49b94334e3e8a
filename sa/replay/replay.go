// Package replay is the ESP anti-replay window of RFC 4303 §3.4.3 with
// 64-bit Extended Sequence Numbers (RFC 4303 Appendix A).
//
// The window is a ring of 64-bit words (the RFC 6479 layout): advancing it
// clears whole words instead of shifting a bitmap, so Check and Accept cost
// the same for a 32-packet and a 4096-packet window.
//
// Check runs before decryption and changes nothing; Accept runs after the ICV
// verified and is the only thing that moves the window. A Window is not safe
// for concurrent use: the owner (sa.SA) serialises Accept, and Accept
// re-checks, so two receivers racing on one sequence number cannot both win.
package replay

import "fmt"

const (
	MinSize     = 32
	MaxSize     = 4096
	DefaultSize = 1024

	wordBits = 64
	// ring holds MaxSize bits plus one spare word, so the word holding the
	// newest bit never shares space with the oldest in-window bit.
	ringWords = MaxSize/wordBits + 1
)

// Window is the receive state of one inbound SA.
type Window struct {
	top  uint64 // highest authenticated sequence number; 0 = none yet
	size uint64 // W, in packets
	esn  bool
	ring [ringWords]uint64
}

// Init resets w for a window of size packets. size must be in
// [MinSize, MaxSize]; 0 means DefaultSize.
func (w *Window) Init(size int, esn bool) error {
	if size == 0 {
		size = DefaultSize
	}
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("replay window %d out of range: use %d..%d packets (default %d)", size, MinSize, MaxSize, DefaultSize)
	}
	*w = Window{size: uint64(size), esn: esn}
	return nil
}

// Size is W.
func (w *Window) Size() int { return int(w.size) }

// Top is the highest sequence number accepted so far (0 if none).
func (w *Window) Top() uint64 { return w.top }

// Infer reconstructs the full sequence number from the 32 low-order bits on
// the wire (RFC 4303 Appendix A2.2). Without ESN the number is the low bits.
// ok is false when the number cannot be inside or above the window (it would
// need a high half below zero).
func (w *Window) Infer(seqLow uint32) (seq uint64, ok bool) {
	if !w.esn {
		return uint64(seqLow), true
	}
	th, tl := uint32(w.top>>32), uint32(w.top)
	wm1 := uint32(w.size - 1)
	sl := seqLow
	var sh uint32
	if tl >= wm1 {
		// Case A: the window lies within one 2^32 subspace.
		if sl >= tl-wm1 {
			sh = th
		} else {
			sh = th + 1
			if sh == 0 {
				return 0, false
			}
		}
	} else {
		// Case B: the window spans two subspaces.
		if sl >= tl-wm1 { // tl-wm1 wraps: sl is in the older subspace
			if th == 0 {
				return 0, false
			}
			sh = th - 1
		} else {
			sh = th
		}
	}
	return uint64(sh)<<32 | uint64(sl), true
}

// Check reports whether seq is new and inside or above the window. It
// does not change the window; call it before spending time on decryption.
func (w *Window) Check(seq uint64) bool {
	if seq == 0 {
		return false // sequence numbers start at 1 (RFC 4303 §3.3.3)
	}
	if seq > w.top {
		return true
	}
	if w.top-seq >= w.size {
		return false
	}
	bit := seq % (ringWords * wordBits)
	return w.ring[bit/wordBits]&(1<<(bit%wordBits)) == 0
}

// Accept records an authenticated seq. It reports false (replay) when seq
// was already accepted or fell out of the window since Check.
func (w *Window) Accept(seq uint64) bool {
	if !w.Check(seq) {
		return false
	}
	if seq > w.top {
		w.advance(seq)
	}
	bit := seq % (ringWords * wordBits)
	w.ring[bit/wordBits] |= 1 << (bit % wordBits)
	return true
}

// advance moves top to seq, clearing the words that enter the window.
func (w *Window) advance(seq uint64) {
	oldWord := w.top / wordBits
	newWord := seq / wordBits
	if w.top == 0 {
		oldWord = newWord
		w.ring = [ringWords]uint64{}
	}
	diff := newWord - oldWord
	if diff > ringWords {
		diff = ringWords
	}
	for i := uint64(1); i <= diff; i++ {
		w.ring[(oldWord+i)%ringWords] = 0
	}
	w.top = seq
}

package replay

import (
	"math/rand/v2"
	"testing"
)

// refWindow is the slow reference: a set of every accepted number.
type refWindow struct {
	top  uint64
	size uint64
	seen map[uint64]bool
}

func (r *refWindow) accept(seq uint64) bool {
	if seq == 0 || r.seen[seq] {
		return false
	}
	if seq+r.size <= r.top {
		return false
	}
	r.seen[seq] = true
	if seq > r.top {
		r.top = seq
	}
	return true
}

func TestWindowAgainstReference(t *testing.T) {
	for _, size := range []int{32, 64, 100, 1024, 4096} {
		var w Window
		if err := w.Init(size, true); err != nil {
			t.Fatal(err)
		}
		ref := &refWindow{size: uint64(size), seen: map[uint64]bool{}}
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		base := uint64(1)
		for i := 0; i < 200000; i++ {
			var seq uint64
			switch rng.IntN(10) {
			case 0: // jump far ahead
				base += uint64(rng.IntN(3 * size))
				seq = base
			case 1: // old
				seq = base - uint64(rng.IntN(2*size))
			default: // near top, reordered
				seq = base + uint64(rng.IntN(8)) - 4
			}
			if seq == 0 || seq > base+8 {
				seq = base
			}
			base++
			got := w.Accept(seq)
			want := ref.accept(seq)
			if got != want {
				t.Fatalf("size %d step %d seq %d top %d: Accept=%v, reference=%v", size, i, seq, w.top, got, want)
			}
		}
	}
}

func TestCheckDoesNotMove(t *testing.T) {
	var w Window
	_ = w.Init(64, false)
	first := w.Check(5)
	second := w.Check(5)
	if !first || !second {
		t.Fatal("Check of a fresh number must stay true")
	}
	if !w.Accept(5) || w.Accept(5) {
		t.Fatal("second Accept of 5 must be a replay")
	}
	if w.Check(0) {
		t.Fatal("sequence number 0 is never valid")
	}
}

func TestInitRange(t *testing.T) {
	var w Window
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{{"default", 0, true}, {"min", 32, true}, {"max", 4096, true}, {"small", 31, false}, {"big", 4097, false}} {
		if err := w.Init(tc.size, false); (err == nil) != tc.ok {
			t.Errorf("%s: Init(%d) err=%v", tc.name, tc.size, err)
		}
	}
	_ = w.Init(0, false)
	if w.Size() != DefaultSize {
		t.Fatalf("default size %d", w.Size())
	}
}

// TestInferESN walks RFC 4303 Appendix A2.2's two cases.
func TestInferESN(t *testing.T) {
	tests := []struct {
		name string
		top  uint64
		low  uint32
		want uint64
		ok   bool
	}{
		{"caseA in window", 5<<32 | 5000, 4500, 5<<32 | 4500, true},
		{"caseA above", 5<<32 | 5000, 6000, 5<<32 | 6000, true},
		{"caseA wrapped forward", 5<<32 | 0xfffffff0, 3, 6<<32 | 3, true},
		{"caseA below window is next subspace", 5<<32 | 5000, 1000, 6<<32 | 1000, true},
		{"caseB older subspace", 5<<32 | 10, 0xfffffff0, 4<<32 | 0xfffffff0, true},
		{"caseB current", 5<<32 | 10, 8, 5<<32 | 8, true},
		{"caseB before zero", 0<<32 | 10, 0xfffffff0, 0, false},
		{"start", 0, 1, 1, true},
	}
	for _, tc := range tests {
		var w Window
		_ = w.Init(1024, true)
		w.top = tc.top
		got, ok := w.Infer(tc.low)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: Infer(%#x) with top %#x = %#x,%v; want %#x,%v", tc.name, tc.low, tc.top, got, ok, tc.want, tc.ok)
		}
	}
}

func TestESNAcrossBoundary(t *testing.T) {
	var w Window
	_ = w.Init(1024, true)
	w.Accept(0xfffffe00) // a sender 4 billion packets in
	for s := uint64(0xffffff00); s < 0x100000100; s++ {
		seq, ok := w.Infer(uint32(s))
		if !ok || seq != s {
			t.Fatalf("Infer(%#x) = %#x,%v", uint32(s), seq, ok)
		}
		if !w.Accept(seq) {
			t.Fatalf("Accept(%#x) refused", seq)
		}
	}
	// A replay of a pre-boundary number still inside the window infers to the
	// old subspace (case B) and is refused.
	seq, ok := w.Infer(0xffffffff)
	if !ok || seq != 0xffffffff || w.Check(seq) {
		t.Fatalf("old number: %#x,%v check=%v", seq, ok, w.Check(seq))
	}
}

func TestAllocs(t *testing.T) {
	var w Window
	_ = w.Init(1024, true)
	n := uint64(1)
	if a := testing.AllocsPerRun(1000, func() {
		seq, _ := w.Infer(uint32(n))
		if w.Check(seq) {
			w.Accept(seq)
		}
		n++
	}); a != 0 {
		t.Fatalf("replay check allocates %v per packet", a)
	}
}

func BenchmarkAccept(b *testing.B) {
	var w Window
	_ = w.Init(1024, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seq, _ := w.Infer(uint32(i + 1))
		w.Accept(seq)
	}
}

package sa

import (
	"github.com/vifsec/vifsec/drop"
	"net/netip"
	"sync"
	"testing"
)

func newOutSA(t *testing.T, esn bool) *SA {
	t.Helper()
	s, err := New(Config{Name: "out", SPI: 0x1000, Dir: DirOut, Mode: ModeTransport,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		Enc: EncAES128GCM, EncKey: make([]byte, 20), Integ: IntegNone, ESN: esn})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSeqReservation(t *testing.T) {
	db := NewDB(0)
	s := newOutSA(t, false)
	if s.SeqLimit() != SeqUnlimited {
		t.Fatalf("new SA: limit %d, want unlimited", s.SeqLimit())
	}
	s.SetSeqLimit(10, 8)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 10; want++ {
		n, d := s.NextSeq()
		if d != drop.None || n != want {
			t.Fatalf("NextSeq = %d, %v; want %d", n, d, want)
		}
		wanted := len(db.RenewalWanted()) == 1
		if wanted != (want >= 8) {
			t.Errorf("after %d: renewal wanted %v, want %v", want, wanted, want >= 8)
		}
	}
	<-db.RenewalWanted()
	// Past the reservation: refused and counted, a renewal asked for.
	if n, d := s.NextSeq(); d != drop.SeqReservation {
		t.Fatalf("past the limit: NextSeq = %d, %v; want drop.SeqReservation", n, d)
	}
	if len(db.RenewalWanted()) != 1 {
		t.Error("exhausted reservation did not ask for a renewal")
	}
	// Once the renewal is durable the SA goes on, above the refused number.
	if !s.RaiseSeqLimit(100, 90) {
		t.Fatal("RaiseSeqLimit refused on a live SA")
	}
	if s.RaiseSeqLimit(50, 40); s.SeqLimit() != 100 {
		t.Errorf("RaiseSeqLimit lowered the limit to %d", s.SeqLimit())
	}
	if n, d := s.NextSeq(); d != drop.None || n != 12 {
		t.Errorf("after renewal: NextSeq = %d, %v; want 12 (11 was refused, never sent)", n, d)
	}
	// Freeze: the exact last number, nothing more handed out, never raised again.
	if last := s.Freeze(); last != 12 {
		t.Errorf("Freeze = %d, want 12", last)
	}
	if _, d := s.NextSeq(); d != drop.SeqReservation {
		t.Errorf("after Freeze: %v, want drop.SeqReservation", d)
	}
	if s.RaiseSeqLimit(1000, 900) || s.SeqLimit() != 0 {
		t.Errorf("a frozen SA's limit was raised to %d", s.SeqLimit())
	}

	r := newOutSA(t, true)
	r.SetSeqLimit(1<<20, 1<<19)
	r.Refuse("no reservation record")
	if _, d := r.NextSeq(); d != drop.SeqRefused {
		t.Errorf("refused SA: %v, want drop.SeqRefused", d)
	}
	if r.Refused() != "no reservation record" {
		t.Errorf("Refused() = %q", r.Refused())
	}
}

// Many senders against a renewer and a final Freeze: no number above a
// limit in force is handed out, none twice, none above Freeze's answer.
func TestSeqReservationConcurrent(t *testing.T) {
	raceSeqs(t, 200, func(s *SA, g, i int) (uint64, int, drop.Reason) {
		n, d := s.NextSeq()
		return n, 1, d
	})
}

// raceSeqs runs 4 senders taking numbers with take (sender g's i-th
// call) from an SA whose reservation a renewer raises rounds times, then
// freezes it: no number may be handed out twice, above the limit in
// force when it was taken, or above Freeze's answer.
func raceSeqs(t *testing.T, rounds int, take func(s *SA, g, i int) (first uint64, granted int, d drop.Reason)) {
	t.Helper()
	db := NewDB(0)
	s := newOutSA(t, true)
	s.SetSeqLimit(1000, 500)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			var mine []uint64
			for i := 0; ; i++ {
				select {
				case <-stop:
					mu.Lock()
					for _, n := range mine {
						if seen[n] {
							t.Errorf("number %d handed out twice", n)
						}
						seen[n] = true
					}
					mu.Unlock()
					return
				default:
				}
				first, granted, d := take(s, g, i)
				if d != drop.None {
					continue
				}
				if lim := s.SeqLimit(); lim != 0 && first+uint64(granted)-1 > lim {
					t.Errorf("numbers %d+%d above the limit %d", first, granted, lim)
				}
				for k := range granted {
					mine = append(mine, first+uint64(k))
				}
			}
		})
	}
	for range rounds {
		<-db.RenewalWanted()
		lim := s.LastSeq() + 1000
		s.RaiseSeqLimit(lim, lim-500)
	}
	last := s.Freeze()
	close(stop)
	wg.Wait()
	for n := range seen {
		if n > last {
			t.Errorf("number %d handed out after Freeze returned %d", n, last)
		}
	}
}

func TestNextSeqAllocsWithReservation(t *testing.T) {
	s := reservedOutSA(t)
	if a := testing.AllocsPerRun(1000, func() { s.NextSeq() }); a != 0 {
		t.Errorf("NextSeq past the renewal mark: %v allocs, want 0", a)
	}
}

// reservedOutSA is an outbound SA in a DB with a reservation whose
// renewal mark is behind it: every number taken asks for a renewal.
func reservedOutSA(t *testing.T) *SA {
	db := NewDB(0)
	s := newOutSA(t, true)
	s.SetSeqLimit(1<<40, 1)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// ReserveSeq hands out blocks that follow one another, clipped at the
// reservation like n calls of NextSeq would be, asking for a renewal.
func TestReserveSeqBlocks(t *testing.T) {
	db := NewDB(0)
	s := newOutSA(t, false)
	s.SetSeqLimit(10, 8)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n, wantFirst, wantGranted int
		want                      drop.Reason
	}{
		{4, 1, 4, drop.None},
		{3, 5, 3, drop.None},
		{4, 8, 3, drop.None}, // 11 is above the limit: 8, 9, 10 only
		{2, 0, 0, drop.SeqReservation},
	} {
		first, granted, d := s.ReserveSeq(c.n)
		if first != uint64(c.wantFirst) || granted != c.wantGranted || d != c.want {
			t.Fatalf("ReserveSeq(%d) = %d, %d, %v; want %d, %d, %v", c.n, first, granted, d, c.wantFirst, c.wantGranted, c.want)
		}
	}
	if len(db.RenewalWanted()) != 1 {
		t.Error("a block past the renewal mark did not ask for a renewal")
	}
	s.RaiseSeqLimit(100, 90)
	if first, granted, d := s.ReserveSeq(5); first != 14 || granted != 5 || d != drop.None {
		t.Errorf("after renewal: %d, %d, %v; want 14, 5 (11-13 were refused, never sent)", first, granted, d)
	}
	if n, d := s.NextSeq(); n != 19 || d != drop.None {
		t.Errorf("NextSeq after blocks = %d, %v; want 19", n, d)
	}
	if last := s.Freeze(); last != 19 {
		t.Errorf("Freeze = %d, want 19", last)
	}
	if _, _, d := s.ReserveSeq(3); d != drop.SeqReservation {
		t.Errorf("after Freeze: %v, want drop.SeqReservation", d)
	}
}

// The end of the sequence space cuts a block short; the soft mark inside
// a block raises the soft event; the next block overflows.
func TestReserveSeqSpaceEnd(t *testing.T) {
	db := NewDB(0)
	s := newOutSA(t, false)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	s.SetNextSeq(seqSoftMark - 2)
	if first, granted, d := s.ReserveSeq(8); first != seqSoftMark-2 || granted != 8 || d != drop.None {
		t.Fatalf("across the soft mark: %d, %d, %v", first, granted, d)
	}
	if ev := <-db.Events(); ev.Kind != EventSoft {
		t.Errorf("event %v, want soft-lifetime", ev.Kind)
	}
	s.SetNextSeq(0xfffffffe)
	if first, granted, d := s.ReserveSeq(4); first != 0xfffffffe || granted != 2 || d != drop.None {
		t.Fatalf("at the end of 32-bit numbers: %d, %d, %v; want 0xfffffffe, 2", first, granted, d)
	}
	if _, _, d := s.ReserveSeq(1); d != drop.SeqOverflow {
		t.Errorf("past the end: %v, want seq-overflow", d)
	}
	if ev := <-db.Events(); ev.Kind != EventSeqOverflow {
		t.Errorf("event %v, want seq-overflow", ev.Kind)
	}
	if _, _, d := s.ReserveSeq(1); d != drop.Expired {
		t.Errorf("after overflow: %v, want expired", d)
	}

	e := newOutSA(t, true)
	e.SetNextSeq(^uint64(0) - 1)
	if first, granted, d := e.ReserveSeq(4); first != ^uint64(0)-1 || granted != 2 || d != drop.None {
		t.Fatalf("ESN at the end of 64-bit numbers: %d, %d, %v; want 2^64-2, 2", first, granted, d)
	}
	if _, _, d := e.ReserveSeq(1); d != drop.SeqOverflow {
		t.Errorf("ESN past the end: %v, want seq-overflow", d)
	}
}

// Blocks and single numbers taken at once against a renewer: no number
// twice, none above the limit in force.
func TestReserveSeqConcurrent(t *testing.T) {
	raceSeqs(t, 100, func(s *SA, g, i int) (uint64, int, drop.Reason) {
		return s.ReserveSeq(1 + (g*7+i)%45)
	})
}

func TestReserveSeqAllocs(t *testing.T) {
	s := reservedOutSA(t)
	if a := testing.AllocsPerRun(1000, func() { s.ReserveSeq(45) }); a != 0 {
		t.Errorf("ReserveSeq past the renewal mark: %v allocs, want 0", a)
	}
}

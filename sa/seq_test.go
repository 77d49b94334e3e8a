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
	for range 4 {
		wg.Go(func() {
			var mine []uint64
			for {
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
				if n, d := s.NextSeq(); d == drop.None {
					if n > s.SeqLimit() && s.SeqLimit() != 0 {
						t.Errorf("number %d above the limit %d", n, s.SeqLimit())
					}
					mine = append(mine, n)
				}
			}
		})
	}
	lim := uint64(1000)
	for range 200 {
		<-db.RenewalWanted()
		lim = s.LastSeq() + 1000
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
	db := NewDB(0)
	s := newOutSA(t, true)
	s.SetSeqLimit(1<<40, 1)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(1000, func() { s.NextSeq() }); a != 0 {
		t.Errorf("NextSeq past the renewal mark: %v allocs, want 0", a)
	}
}

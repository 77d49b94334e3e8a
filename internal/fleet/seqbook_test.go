package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
)

func TestSeqBook(t *testing.T) {
	dir := t.TempDir()
	db := sa.NewDB(0)
	cfg := sa.Config{Name: "s1", SPI: 0x1000, Mode: sa.ModeTransport, Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		Enc: sa.EncAES128GCM, EncKey: make([]byte, 20), Integ: sa.IntegNone, Created: time.Unix(1700000000, 0).UTC()}
	s, err := sa.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	b := openSeqBook(dir)
	if n := b.next(&cfg); n != 0 {
		t.Errorf("empty book: next %d, want 0", n)
	}
	s.SetNextSeq(1000)
	if err := b.checkpoint(db); err != nil {
		t.Fatal(err)
	}
	s.SetNextSeq(3000) // 2000 sent in the next interval
	if err := b.checkpoint(db); err != nil {
		t.Fatal(err)
	}
	// A new daemon (restart) reads the book.
	b2 := openSeqBook(dir)
	n := b2.next(&cfg)
	if n < 3000+seqMargin || n > 3000+2*3000+seqMargin {
		t.Errorf("after a restart: next %d, want 3000 + margin (2×rate + %d)", n, seqMargin)
	}
	// Another SA of the same name (re-added, new creation time) starts over.
	other := cfg
	other.Created = cfg.Created.Add(time.Second)
	if n := b2.next(&other); n != 0 {
		t.Errorf("a new SA of the same name continues at %d", n)
	}
}

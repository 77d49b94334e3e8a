package sa_test

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

var gcm = satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}

func vmSA(name string, mac byte, vlan uint16, spi uint32) *sa.SA {
	c := satest.Config(name, gcm, sa.ModeTransport, satest.V6A, satest.V6B, spi)
	c.Scope = sa.Scope{VLAN: vlan, MAC: header.MAC{0x52, 0x54, 0, 0, 0, mac}}
	return satest.MustNew(c)
}

func TestSameSPIDifferentVMs(t *testing.T) {
	db := sa.NewDB(0)
	acme := vmSA("acme", 1, 10, 0x1000)
	globex := vmSA("globex", 2, 20, 0x1000)
	if err := db.Add(acme); err != nil {
		t.Fatal(err)
	}
	if err := db.Add(globex); err != nil {
		t.Fatalf("same SPI on another VM refused: %v", err)
	}
	if got := db.Lookup(acme.Key()); got != acme {
		t.Fatalf("lookup acme: %v", got)
	}
	if got := db.Lookup(globex.Key()); got != globex {
		t.Fatalf("lookup globex: %v", got)
	}
	// Same MAC, other VLAN: a different VM interface.
	if db.Lookup(sa.Key{Scope: sa.Scope{VLAN: 20, MAC: acme.Key().Scope.MAC}, SPI: 0x1000}) != nil {
		t.Fatal("lookup across VLANs found an SA")
	}
	err := db.Add(vmSA("acme2", 1, 10, 0x1000))
	if err == nil || !strings.Contains(err.Error(), "--sa-spi") {
		t.Fatalf("duplicate SPI within a VM: %v", err)
	}
	err = db.Add(vmSA("acme", 3, 10, 0x2000))
	if err == nil || !strings.Contains(err.Error(), "--sa-name") {
		t.Fatalf("duplicate name: %v", err)
	}
}

func TestApplyAtomic(t *testing.T) {
	db := sa.NewDB(0)
	a := vmSA("a", 1, 0, 0x1000)
	if err := db.Add(a); err != nil {
		t.Fatal(err)
	}
	// A batch whose second element conflicts changes nothing.
	err := db.Apply([]*sa.SA{vmSA("b", 1, 0, 0x2000), vmSA("c", 1, 0, 0x1000)}, nil)
	if err == nil {
		t.Fatal("conflicting batch accepted")
	}
	if db.Get("b") != nil || db.Len() != 1 {
		t.Fatalf("failed batch left changes: len %d", db.Len())
	}
	// Replace: remove a and add a new SA with its key in one step.
	a2 := vmSA("a2", 1, 0, 0x1000)
	if err := db.Apply([]*sa.SA{a2}, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if db.Lookup(a2.Key()) != a2 || !a.Expired() {
		t.Fatal("replace did not take")
	}
}

func TestLookupConcurrentWithWrites(t *testing.T) {
	db := sa.NewDB(0)
	stable := vmSA("stable", 9, 0, 0x9999)
	_ = db.Add(stable)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if db.Lookup(stable.Key()) != stable {
					t.Error("stable SA vanished during writes")
					return
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		s := vmSA("x", byte(i), 0, uint32(0x100+i))
		if err := db.Add(s); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Remove("x"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLookupAllocs(t *testing.T) {
	db := sa.NewDB(0)
	s := vmSA("a", 1, 7, 0x1000)
	_ = db.Add(s)
	k := s.Key()
	miss := sa.Key{SPI: 0x4242}
	if a := testing.AllocsPerRun(1000, func() {
		if db.Lookup(k) != s || db.Lookup(miss) != nil {
			t.Fatal("lookup wrong")
		}
	}); a != 0 {
		t.Fatalf("Lookup allocates %v", a)
	}
}

func TestLifetimeEvents(t *testing.T) {
	db := sa.NewDB(4)
	c := satest.Config("l", gcm, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	c.Lifetime = sa.Lifetime{Soft: sa.Limits{Packets: 2}, Hard: sa.Limits{Packets: 3, Seconds: 60}}
	s := satest.MustNew(c)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if d := s.Account(100); d != drop.None {
			t.Fatalf("packet %d: %v", i, d)
		}
	}
	if ev := <-db.Events(); ev.Kind != sa.EventSoft || ev.Name != "l" {
		t.Fatalf("first event %+v, want soft", ev)
	}
	if d := s.Account(100); d != drop.Expired {
		t.Fatalf("packet 4 past hard limit: %v", d)
	}
	if ev := <-db.Events(); ev.Kind != sa.EventHard {
		t.Fatalf("second event %+v, want hard", ev)
	}
	if got := s.Stats.Packets.Load(); got != 3 {
		t.Fatalf("refused packet counted: %d", got)
	}

	// Seconds: Tick reports the expired SA.
	c2 := satest.Config("t", gcm, sa.ModeTransport, satest.V6A, satest.V6B, 0x2000)
	c2.Lifetime.Hard.Seconds = 10
	s2 := satest.MustNew(c2)
	_ = db.Add(s2)
	if exp := db.Tick(time.Now().Add(11 * time.Second)); len(exp) != 2 {
		t.Fatalf("Tick expired %d SAs, want 2 (l and t)", len(exp))
	}
}

func TestEventsNeverBlock(t *testing.T) {
	db := sa.NewDB(1)
	for i := 0; i < 3; i++ {
		c := satest.Config(string(rune('a'+i)), gcm, sa.ModeTransport, satest.V6A, satest.V6B, uint32(0x1000+i))
		c.Lifetime.Hard.Packets = 1
		s := satest.MustNew(c)
		_ = db.Add(s)
		s.Account(1)
		s.Account(1) // expires: event, never blocks even though nobody reads
	}
	if db.LostEvents() != 2 {
		t.Fatalf("lost events %d, want 2", db.LostEvents())
	}
}

func TestRemoveZeroesKeys(t *testing.T) {
	db := sa.NewDB(0)
	s := vmSA("z", 1, 0, 0x1000)
	_ = db.Add(s)
	if _, err := db.Remove("z"); err != nil {
		t.Fatal(err)
	}
	c := s.ConfigWithKeys()
	for _, b := range c.EncKey {
		if b != 0 {
			t.Fatal("key not zeroed after remove")
		}
	}
	if db.Lookup(s.Key()) != nil {
		t.Fatal("removed SA still found")
	}
}

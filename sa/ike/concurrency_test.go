package ike

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
)

// TestConcurrent runs two engines on real goroutines and real time: each
// delivers datagrams from its own goroutine, Run drives the timers, and
// every callback calls back into the engine (as the daemon's API handlers
// would). Many IKE SAs come up and are rekeyed from both sides at once
// (collisions included); under -race this checks the locking contract.
func TestConcurrent(t *testing.T) {
	const policies = 12
	type peer struct {
		e     *Engine
		inbox chan Packet
		mu    sync.Mutex
		inst  map[string]*ChildSA
	}
	var a, b *peer
	route := func(p Packet) {
		dst := a
		if p.Remote.Addr() == addrB {
			dst = b
		}
		select {
		case dst.inbox <- Packet{Local: p.Remote, Remote: p.Local, Data: p.Data}:
		default: // a full queue drops, as a network would
		}
	}
	mk := func() *peer {
		pr := &peer{inbox: make(chan Packet, 1024), inst: map[string]*ChildSA{}}
		pr.e = New(&Config{
			Logger: testLogger(),
			Send:   route,
			Install: func(c *ChildSA) error {
				_ = pr.e.IKESAs() // re-entry from a callback must not deadlock
				pr.mu.Lock()
				defer pr.mu.Unlock()
				cp := *c
				cp.In.EncKey, cp.Out.EncKey = bytes.Clone(c.In.EncKey), bytes.Clone(c.Out.EncKey)
				pr.inst[c.In.Name] = &cp
				return nil
			},
			Switch: func(c *ChildSA) { _ = pr.e.ChildSAs() },
			Remove: func(c *ChildSA) {
				pr.mu.Lock()
				delete(pr.inst, c.In.Name)
				pr.mu.Unlock()
				_ = pr.e.SetPolicies // touch the engine from a callback
			},
			RetransmitTimeout: 200 * time.Millisecond,
			RetransmitTries:   8,
		})
		return pr
	}
	a, b = mk(), mk()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, pr := range []*peer{a, b} {
		wg.Add(2)
		go func() { defer wg.Done(); pr.e.Run(ctx) }()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-pr.inbox:
					pr.e.Input(p)
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	_, pb := pskPair()
	pb.Mode = sa.ModeTunnel
	pb.LocalTS = []netip.Prefix{prefix("10.2.0.0/16")}
	pb.RemoteTS = []netip.Prefix{prefix("10.1.0.0/16")}
	if err := b.e.SetPolicies([]Policy{pb}); err != nil {
		t.Fatal(err)
	}
	var pas []Policy
	for i := 0; i < policies; i++ {
		pa, _ := pskPair()
		pa.Name = fmt.Sprintf("p%d", i)
		pa.Mode = sa.ModeTunnel
		pa.LocalTS = []netip.Prefix{prefix(fmt.Sprintf("10.1.%d.0/24", i))}
		pa.RemoteTS = []netip.Prefix{prefix(fmt.Sprintf("10.2.%d.0/24", i))}
		pas = append(pas, pa)
	}
	if err := a.e.SetPolicies(pas); err != nil {
		t.Fatal(err)
	}
	count := func(pr *peer) int {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return len(pr.inst)
	}
	settled := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok := count(a) == policies && count(b) == policies && len(a.e.ChildSAs()) == policies && len(b.e.ChildSAs()) == policies
			if ok {
				for _, c := range a.e.ChildSAs() {
					ok = ok && c.State == "INSTALLED"
				}
				for _, s := range append(a.e.IKESAs(), b.e.IKESAs()...) {
					ok = ok && s.State == "ESTABLISHED"
				}
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not settled: a %d/%d children, b %d/%d\na: %+v\nb: %+v", what, count(a), len(a.e.ChildSAs()), count(b), len(b.e.ChildSAs()), a.e.IKESAs(), b.e.IKESAs())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Keys pair up.
		a.mu.Lock()
		b.mu.Lock()
		defer a.mu.Unlock()
		defer b.mu.Unlock()
		for _, x := range a.inst {
			found := false
			for _, y := range b.inst {
				if y.In.SPI == x.Out.SPI && y.Out.SPI == x.In.SPI && bytes.Equal(y.In.EncKey, x.Out.EncKey) && bytes.Equal(y.Out.EncKey, x.In.EncKey) {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: child %s unpaired", what, x.In.Name)
			}
		}
	}
	settled("setup")

	// Rekey every child from both sides at once, from many goroutines.
	var rk sync.WaitGroup
	for _, pr := range []*peer{a, b} {
		for _, c := range pr.e.ChildSAs() {
			rk.Add(1)
			go func() {
				defer rk.Done()
				pr.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.InName})
			}()
		}
	}
	for i := 0; i < policies; i += 3 {
		rk.Add(1)
		go func() { defer rk.Done(); a.e.RekeyIKE("acme", fmt.Sprintf("p%d", i)) }()
	}
	rk.Wait()
	settled("rekey")
	if n := len(a.e.IKESAs()); n != policies {
		t.Fatalf("a has %d IKE SAs, want %d", n, policies)
	}

	// Tear down from the API while traffic (rekeys) runs.
	for _, c := range b.e.ChildSAs()[:3] {
		go b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.InName})
	}
	if err := a.e.SetPolicies(nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for count(a) != 0 || count(b) != 0 || len(a.e.IKESAs()) != 0 || len(b.e.IKESAs()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("teardown: a %d children %d IKE SAs, b %d children %d IKE SAs", count(a), len(a.e.IKESAs()), count(b), len(b.e.IKESAs()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

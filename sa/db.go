package sa

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const shardBits = 6

// DB is the SA database: every SA of every VM on the host, found by
// (vlan, mac, SPI) for inbound ESP and by name for the control plane.
//
// Lookup is safe to call from any number of goroutines concurrently with
// writers and never blocks (see the package comment). Add, Remove and Apply
// serialise among themselves.
type DB struct {
	shards [1 << shardBits]atomic.Pointer[table]

	mu     sync.Mutex
	byName map[string]*SA
	sink   eventSink
}

// eventSink is where SAs report lifetime events without blocking.
type eventSink struct {
	ch    chan Event
	lost  atomic.Uint64
	renew chan struct{} // capacity 1: a renewal is wanted
}

// askRenewal wakes whoever renews sequence reservations, without
// blocking or allocating.
func (e *eventSink) askRenewal() {
	select {
	case e.renew <- struct{}{}:
	default:
	}
}

func (e *eventSink) emit(ev Event) {
	select {
	case e.ch <- ev:
	default:
		e.lost.Add(1)
	}
}

// NewDB returns an empty database whose lifetime events are buffered up to
// eventBuf (0 means 1024).
func NewDB(eventBuf int) *DB {
	if eventBuf <= 0 {
		eventBuf = 1024
	}
	db := &DB{byName: map[string]*SA{}, sink: eventSink{ch: make(chan Event, eventBuf), renew: make(chan struct{}, 1)}}
	for i := range db.shards {
		db.shards[i].Store(emptyTable)
	}
	return db
}

// Lookup finds the SA for k, or nil. It does not allocate or lock.
func (db *DB) Lookup(k Key) *SA {
	h := hashKey(k)
	return db.shards[h>>(64-shardBits)].Load().get(k, h)
}

// Get finds an SA by name.
func (db *DB) Get(name string) *SA {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.byName[name]
}

// Len is the number of SAs.
func (db *DB) Len() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.byName)
}

// List returns every SA sorted by name.
func (db *DB) List() []*SA {
	db.mu.Lock()
	out := make([]*SA, 0, len(db.byName))
	for _, s := range db.byName {
		out = append(out, s)
	}
	db.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Name < out[j].cfg.Name })
	return out
}

// Events delivers lifetime events. If nobody drains it, events are
// dropped and counted (LostEvents), never blocking the data path.
func (db *DB) Events() <-chan Event { return db.sink.ch }

// RenewalWanted receives a value when an SA reached the renewal mark of
// its sequence reservation (SA.SetSeqLimit): the owner of the
// reservations should extend them.
func (db *DB) RenewalWanted() <-chan struct{} { return db.sink.renew }

// WantRenewal wakes the RenewalWanted reader (an SA was added that needs
// a reservation).
func (db *DB) WantRenewal() { db.sink.askRenewal() }

// LostEvents counts events dropped because Events was not drained.
func (db *DB) LostEvents() uint64 { return db.sink.lost.Load() }

// Add inserts s. It fails, changing nothing, if the name or the
// (vlan, mac, SPI) key is taken.
func (db *DB) Add(s *SA) error { return db.Apply([]*SA{s}, nil) }

// Remove deletes the SA named name, zeroes its keys and returns it.
func (db *DB) Remove(name string) (*SA, error) {
	db.mu.Lock()
	s := db.byName[name]
	db.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("--sa-name: no SA named %q", name)
	}
	if err := db.Apply(nil, []string{name}); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply removes the SAs named in remove, then adds those in add, as one
// change: either all of it is published or none (readers see the old or
// the new state of each shard). Removed SAs are expired and their keys
// zeroed.
func (db *DB) Apply(add []*SA, remove []string) error {
	db.mu.Lock()
	defer db.mu.Unlock()

	gone := make(map[string]*SA, len(remove))
	for _, n := range remove {
		s := db.byName[n]
		if s == nil {
			return fmt.Errorf("--sa-name: no SA named %q", n)
		}
		gone[n] = s
	}
	goneKey := make(map[Key]bool, len(gone))
	for _, s := range gone {
		goneKey[s.key] = true
	}
	newName := make(map[string]bool, len(add))
	newKey := make(map[Key]bool, len(add))
	for _, s := range add {
		n := s.cfg.Name
		if (db.byName[n] != nil && gone[n] == nil) || newName[n] {
			return fmt.Errorf("--sa-name: an SA named %q already exists", n)
		}
		if (db.Lookup(s.key) != nil && !goneKey[s.key]) || newKey[s.key] {
			return fmt.Errorf("--sa-spi: SPI 0x%x is already used by another SA of the VM with %s (SPIs are unique per VM)", s.key.SPI, s.key.Scope)
		}
		newName[n], newKey[s.key] = true, true
	}

	// Rebuild each touched shard once, from its old SAs minus the removed
	// plus the added.
	touched := map[uint64][]*SA{}
	for _, s := range gone {
		touched[hashKey(s.key)>>(64-shardBits)] = nil
	}
	for _, s := range add {
		touched[hashKey(s.key)>>(64-shardBits)] = nil
	}
	for i := range touched {
		var keep []*SA
		for _, s := range db.shards[i].Load().all(nil) {
			if !goneKey[s.key] {
				keep = append(keep, s)
			}
		}
		touched[i] = keep
	}
	for _, s := range add {
		i := hashKey(s.key) >> (64 - shardBits)
		touched[i] = append(touched[i], s)
	}
	for _, s := range add {
		s.sink = &db.sink // before publishing: readers may emit at once
	}
	for i, sas := range touched {
		db.shards[i].Store(newTable(sas))
	}
	for n, s := range gone {
		delete(db.byName, n)
		s.close()
	}
	for _, s := range add {
		db.byName[s.cfg.Name] = s
	}
	return nil
}

// Tick applies seconds lifetimes to every SA; the daemon calls it once a
// second. It returns the SAs that are expired, for the caller to remove.
func (db *DB) Tick(now time.Time) []*SA {
	var expired []*SA
	for _, s := range db.List() {
		s.CheckTime(now)
		if s.Expired() {
			expired = append(expired, s)
		}
	}
	return expired
}

// Package sadbbench holds the SA database benchmarks: sa.DB.Lookup over a
// large database, hits and misses, the memory each SA costs, and the same
// measured for a plain map[sa.Key]*sa.SA as the baseline. Both
// `go test -bench` (sa/db_bench_test.go) and `make bench-sadb`
// (internal/bench/cmd/vifsec-bench) use it. It measures; it asserts
// nothing about timing.
//
// # Method
//
// The SAs are aes128-gcm inbound SAs (each with its cipher state and a
// default 1024-packet replay window), four per VM interface: n/4 scopes
// with distinct (vlan, mac) and random SPIs. Lookups use a pre-drawn random
// sequence of keys much larger than the caches, so each one walks the map
// from memory as inbound traffic for many VMs would, not a hot handful.
// Misses are existing scopes with SPIs they do not use (the "no-sa" drop).
//
// Memory is runtime.MemStats.HeapAlloc after runtime.GC, taken before and
// after each step on the same SAs: the SAs themselves, then the DB's index
// (shards and the by-name map), then a plain map of the same SAs.
package sadbbench

import (
	"fmt"
	"github.com/vifsec/vifsec/header"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// lookupKeys is how many keys each lookup benchmark cycles through (a
// power of two: the loop masks the index).
const lookupKeys = 1 << 20

// Fixture is a populated database and its baseline.
type Fixture struct {
	N    int
	SAs  []*sa.SA
	DB   *sa.DB
	Map  map[sa.Key]*sa.SA
	Hit  []sa.Key // random existing keys
	Miss []sa.Key // keys of existing scopes with unused SPIs

	SABytes    uint64 // heap of the SAs themselves (config, keys, cipher, replay window)
	DBBytes    uint64 // heap of the DB's index on top of the SAs
	MapBytes   uint64 // heap of the plain map on top of the SAs
	BuildBatch int
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Build makes n SAs (n a multiple of 4), loads them into a DB with Apply in
// batches of batch, and into a plain map, measuring the heap at each step.
func Build(n, batch int, seed uint64) (*Fixture, error) {
	if n <= 0 || n%4 != 0 {
		return nil, fmt.Errorf("sadbbench: %d SAs: use a positive multiple of 4 (four SAs per VM)", n)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := &Fixture{N: n, SAs: make([]*sa.SA, 0, n), BuildBatch: batch}
	suite := satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	spis := make(map[sa.Key]bool, n) // uniqueness check; freed before measuring
	keys := make([]sa.Key, 0, n)

	h0 := heapAfterGC()
	for vm := 0; vm < n/4; vm++ {
		scope := sa.Scope{
			VLAN: uint16(1 + vm%4094),
			MAC:  header.MAC{0x52, 0x54, byte(vm >> 24), byte(vm >> 16), byte(vm >> 8), byte(vm)},
		}
		for j := 0; j < 4; j++ {
			var k sa.Key
			for {
				k = sa.Key{Scope: scope, SPI: 0x100 + rng.Uint32N(0xffffffff-0x100)}
				if !spis[k] {
					break
				}
			}
			spis[k] = true
			c := satest.Config(fmt.Sprintf("vm%d-sa%d", vm, j), suite, sa.ModeTransport, satest.V6A, satest.V6B, k.SPI)
			c.Scope, c.Dir = scope, sa.DirIn
			s, err := sa.New(c)
			if err != nil {
				return nil, fmt.Errorf("sadbbench: SA %d: %w", len(f.SAs), err)
			}
			f.SAs = append(f.SAs, s)
			keys = append(keys, k)
		}
	}
	// The miss keys need spis; draw them before it is freed.
	f.Miss = make([]sa.Key, lookupKeys)
	for i := range f.Miss {
		k := keys[rng.IntN(len(keys))]
		for spis[k] || k.SPI < 0x100 {
			k.SPI = rng.Uint32()
		}
		f.Miss[i] = k
	}
	f.Hit = make([]sa.Key, lookupKeys)
	for i := range f.Hit {
		f.Hit[i] = keys[rng.IntN(len(keys))]
	}
	// spis and keys are dead from here on and freed by the GC below.
	// f.SAs, f.Hit and f.Miss were allocated before h0 or are not SA
	// state: count them out.
	h1 := heapAfterGC()
	f.SABytes = h1 - h0 - 2*lookupKeys*uint64(sizeofKey)

	f.DB = sa.NewDB(0)
	for i := 0; i < n; i += batch {
		if err := f.DB.Apply(f.SAs[i:min(i+batch, n)], nil); err != nil {
			return nil, fmt.Errorf("sadbbench: Apply: %w", err)
		}
	}
	h2 := heapAfterGC()
	f.DBBytes = h2 - h1

	f.Map = make(map[sa.Key]*sa.SA) // grown by inserts, as the DB's shards are
	for _, s := range f.SAs {
		f.Map[s.Key()] = s
	}
	h3 := heapAfterGC()
	f.MapBytes = h3 - h2
	return f, nil
}

const sizeofKey = 12 // sa.Key: VLAN 2 + MAC 6 + SPI 4

// LookupDB benchmarks db.Lookup over keys; hit says whether every key
// must be found (true) or none (false).
func LookupDB(db *sa.DB, keys []sa.Key, hit bool) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		mask := len(keys) - 1
		found := 0
		for i := 0; i < b.N; i++ {
			if db.Lookup(keys[i&mask]) != nil {
				found++
			}
		}
		check(found, b.N, hit) // uses found: the loop cannot be optimised away
	}
}

// LookupMap is LookupDB for a plain map: the baseline.
func LookupMap(m map[sa.Key]*sa.SA, keys []sa.Key, hit bool) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		mask := len(keys) - 1
		found := 0
		for i := 0; i < b.N; i++ {
			if m[keys[i&mask]] != nil {
				found++
			}
		}
		check(found, b.N, hit) // uses found: the loop cannot be optimised away
	}
}

func check(found, n int, hit bool) {
	if want := map[bool]int{true: n, false: 0}[hit]; found != want {
		panic(fmt.Sprintf("sadbbench: %d of %d lookups found an SA, want %d", found, n, want))
	}
}

// Report is the measured figures.
type Report struct {
	N                             int
	LookupNs, MissNs              float64
	MapLookupNs, MapMissNs        float64
	BytesPerSA, MapBytesPerSA     float64
	SABytesPerSA, IndexBytesPerSA float64
	MapIndexBytesPerSA            float64
	LookupAllocs                  int64
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

// Run measures f with testing.Benchmark.
func Run(f *Fixture) Report {
	n := float64(f.N)
	hit := testing.Benchmark(LookupDB(f.DB, f.Hit, true))
	r := Report{
		N:                  f.N,
		LookupNs:           nsPerOp(hit),
		MissNs:             nsPerOp(testing.Benchmark(LookupDB(f.DB, f.Miss, false))),
		MapLookupNs:        nsPerOp(testing.Benchmark(LookupMap(f.Map, f.Hit, true))),
		MapMissNs:          nsPerOp(testing.Benchmark(LookupMap(f.Map, f.Miss, false))),
		SABytesPerSA:       float64(f.SABytes) / n,
		IndexBytesPerSA:    float64(f.DBBytes) / n,
		MapIndexBytesPerSA: float64(f.MapBytes) / n,
		LookupAllocs:       hit.AllocsPerOp(),
	}
	r.BytesPerSA = r.SABytesPerSA + r.IndexBytesPerSA
	r.MapBytesPerSA = r.SABytesPerSA + r.MapIndexBytesPerSA
	return r
}

// Lines is the report: the DB, then the map baseline with ratios
// baseline/DB (1.0 = the DB costs nothing over a plain map).
func (r Report) Lines() []string {
	return []string{
		fmt.Sprintf("sadb sas=%d lookup_ns=%.1f miss_ns=%.1f bytes_per_sa=%.0f", r.N, r.LookupNs, r.MissNs, r.BytesPerSA),
		fmt.Sprintf("sadb-detail sas=%d sa_bytes_per_sa=%.0f index_bytes_per_sa=%.0f lookup_allocs=%d", r.N, r.SABytesPerSA, r.IndexBytesPerSA, r.LookupAllocs),
		fmt.Sprintf("sadb-baseline map[Key]*SA sas=%d lookup_ns=%.1f miss_ns=%.1f bytes_per_sa=%.0f index_bytes_per_sa=%.0f lookup_ratio=%.2f miss_ratio=%.2f mem_ratio=%.2f",
			r.N, r.MapLookupNs, r.MapMissNs, r.MapBytesPerSA, r.MapIndexBytesPerSA,
			r.MapLookupNs/r.LookupNs, r.MapMissNs/r.MissNs, r.MapBytesPerSA/r.BytesPerSA),
	}
}

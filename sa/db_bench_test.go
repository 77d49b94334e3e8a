package sa_test

// Go benchmarks of sa.DB.Lookup against a plain map, per database size;
// `make bench-sadb` runs the same bodies on 1,000,000 SAs and adds the
// memory per SA (internal/bench/sadbbench documents the method):
//
//	go test -run '^$' -bench Lookup ./sa/

import (
	"strconv"
	"sync"
	"testing"

	"github.com/vifsec/vifsec/internal/bench/sadbbench"
)

var (
	fixturesMu sync.Mutex
	fixtures   = map[int]*sadbbench.Fixture{}
)

// fixture builds each size once per process: a million SAs take seconds.
func fixture(b *testing.B, n int) *sadbbench.Fixture {
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := fixtures[n]; f != nil {
		return f
	}
	f, err := sadbbench.Build(n, 100000, 1)
	if err != nil {
		b.Fatal(err)
	}
	fixtures[n] = f
	return f
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1000, 100000, 1000000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := fixture(b, n)
			b.Run("db/hit", func(b *testing.B) {
				sadbbench.LookupDB(f.DB, f.Hit, true)(b)
				b.ReportMetric(float64(f.SABytes+f.DBBytes)/float64(n), "B/SA")
			})
			b.Run("db/miss", sadbbench.LookupDB(f.DB, f.Miss, false))
			b.Run("map/hit", sadbbench.LookupMap(f.Map, f.Hit, true))
			b.Run("map/miss", sadbbench.LookupMap(f.Map, f.Miss, false))
		})
	}
}

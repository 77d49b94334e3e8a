package esp_test

// Go benchmarks of the ESP transform: the same bodies `make bench-esp`
// runs (internal/bench/espbench documents the method), as sub-benchmarks
// per suite and payload size, with b.SetBytes and b.ReportAllocs:
//
//	go test -run '^$' -bench . ./sa/esp/
//	go test -run '^$' -bench 'Encap/aes128-gcm/1400' ./sa/esp/
//
// Suite names contain '/', which -bench splits on: match them piecewise
// (aes128-cbc/hmac-sha2-256 is "aes128-cbc/hmac-sha2-256" as two levels).

import (
	"strconv"
	"testing"

	"github.com/vifsec/vifsec/internal/bench/espbench"
	"github.com/vifsec/vifsec/sa/satest"
)

func benchEach(b *testing.B, body func(satest.Suite, int) func(*testing.B)) {
	for _, s := range satest.Suites() {
		b.Run(espbench.Name(s), func(b *testing.B) {
			for _, n := range espbench.Sizes {
				b.Run(strconv.Itoa(n), body(s, n))
			}
		})
	}
}

func BenchmarkEncap(b *testing.B) { benchEach(b, espbench.Encap) }
func BenchmarkDecap(b *testing.B) { benchEach(b, espbench.Decap) }

// BenchmarkBareSeal and BenchmarkBareOpen are the bare cipher on the same
// payload, the baseline of encap_ratio and decap_ratio.
func BenchmarkBareSeal(b *testing.B) { benchEach(b, espbench.Seal) }
func BenchmarkBareOpen(b *testing.B) { benchEach(b, espbench.Open) }

package pmtu_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/offload/pmtu"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRateLimiterBurstAndRefill(t *testing.T) {
	r := pmtu.NewRateLimiter(10, 3) // one token per 100 ms, bucket of 3
	now := epoch
	for i := range 3 {
		if !r.Allow(now) {
			t.Fatalf("burst event %d denied", i)
		}
	}
	if r.Allow(now) {
		t.Fatal("4th event at the same instant allowed")
	}
	if r.Allow(now.Add(99 * time.Millisecond)) {
		t.Fatal("allowed before a token was due")
	}
	if !r.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("denied when a token was due")
	}
	if r.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("second event on one token")
	}
	// After a long quiet spell the bucket is full again, not fuller.
	later := now.Add(time.Hour)
	n := 0
	for r.Allow(later) {
		n++
	}
	if n != 3 {
		t.Fatalf("after an hour %d allowed at once, want 3", n)
	}
}

func TestRateLimiterRate(t *testing.T) {
	tests := []struct {
		name             string
		perSecond, burst int
	}{
		{name: "10/s burst 1", perSecond: 10, burst: 1},
		{name: "100/s burst 20", perSecond: 100, burst: 20},
		{name: "1000/s burst 0 means 1", perSecond: 1000, burst: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := pmtu.NewRateLimiter(tc.perSecond, tc.burst)
			n := 0
			// Offer one event every 100 µs for 10 s.
			for i := range 100000 {
				if r.Allow(epoch.Add(time.Duration(i) * 100 * time.Microsecond)) {
					n++
				}
			}
			want := 10*tc.perSecond + max(tc.burst, 1)
			if n < want-1 || n > want {
				t.Errorf("allowed %d in 10 s, want %d", n, want)
			}
		})
	}
}

func TestRateLimiterClockSteps(t *testing.T) {
	r := pmtu.NewRateLimiter(1, 1)
	if !r.Allow(epoch) {
		t.Fatal("first denied")
	}
	if r.Allow(epoch.Add(-500 * time.Millisecond)) {
		t.Fatal("a small step back allowed a second event")
	}
	if !r.Allow(epoch.Add(-time.Hour)) {
		t.Fatal("after the clock went back an hour the VM stays silenced")
	}
	if r.Allow(epoch.Add(-time.Hour)) {
		t.Fatal("reset bucket allowed more than its burst")
	}
}

func TestRateLimiterOff(t *testing.T) {
	var zero pmtu.RateLimiter
	for _, r := range []*pmtu.RateLimiter{&zero, pmtu.NewRateLimiter(0, 10), pmtu.NewRateLimiter(-1, 10)} {
		if r.Allow(epoch) {
			t.Error("a limiter with no rate allowed an event")
		}
	}
}

// TestRateLimiterConcurrent: many goroutines at one instant get exactly
// the burst between them (run with -race).
func TestRateLimiterConcurrent(t *testing.T) {
	r := pmtu.NewRateLimiter(1, 50)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if r.Allow(epoch) {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 50 {
		t.Errorf("allowed %d, want the burst of 50", got)
	}
}

func TestRateLimiterAllocs(t *testing.T) {
	r := pmtu.NewRateLimiter(100, 10)
	now := epoch
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		r.Allow(now)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

func BenchmarkRateLimiterAllow(b *testing.B) {
	r := pmtu.NewRateLimiter(1000, 10)
	now := epoch
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		r.Allow(now)
	}
}

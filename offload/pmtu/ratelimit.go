package pmtu

import (
	"sync/atomic"
	"time"
)

// RateLimiter is a token bucket for the ICMP errors of one VM: on average
// perSecond, at most burst at once. It is the generic cell rate algorithm
// (GCRA, the "virtual scheduling" form of a token bucket): one atomic
// theoretical arrival time and a compare-and-swap, so Allow takes no lock
// and allocates nothing.
//
// A RateLimiter is safe for concurrent use. The caller passes the time
// (now) in; wall-clock readings work: a clock stepped forward refills the
// bucket, one stepped back by more than a second resets it rather than
// silencing the VM until the clock catches up. The zero value allows
// nothing: use NewRateLimiter.
type RateLimiter struct {
	interval  int64 // nanoseconds per token; 0 allows nothing
	tolerance int64 // burst × interval
	tat       atomic.Int64
}

// NewRateLimiter returns a limiter allowing perSecond events per second
// on average and burst in a row (burst below 1 is taken as 1; perSecond
// of 0 or less allows nothing; above 1e9 allows everything).
func NewRateLimiter(perSecond, burst int) *RateLimiter {
	r := &RateLimiter{}
	if perSecond <= 0 {
		return r
	}
	burst = max(burst, 1)
	r.interval = max(int64(time.Second)/int64(perSecond), 1)
	r.tolerance = r.interval * int64(burst)
	return r
}

// Allow reports whether one more event is allowed at now, and if so
// counts it.
func (r *RateLimiter) Allow(now time.Time) bool {
	if r.interval == 0 {
		return false
	}
	t := now.UnixNano()
	for {
		old := r.tat.Load()
		base := max(old, t)
		if old-t > r.tolerance+int64(time.Second) {
			base = t // the clock went back: start over
		}
		next := base + r.interval
		if next-t > r.tolerance {
			return false
		}
		if r.tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

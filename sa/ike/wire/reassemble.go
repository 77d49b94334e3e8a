package wire

import (
	"errors"
	"fmt"
	"time"
)

// Reassembly limits used when the Reassembler fields are zero.
const (
	DefaultMaxFragments = 64
	DefaultMaxBytes     = 128 << 10
	DefaultMaxMessages  = 4
)

// Reassembly errors. The fragment is dropped; for ErrReassemblyTooLarge the
// whole message in progress is dropped too.
var (
	ErrTooManyFragments   = errors.New("field Total Fragments above the reassembly limit")
	ErrReassemblyTooLarge = errors.New("reassembled message above the size limit")
	ErrStaleFragment      = errors.New("fragment of an older fragmentation of the message (smaller Total Fragments)")
)

// Reassembler collects the decrypted SKF fragments of one IKE SA's messages
// and returns each message's inner payload bytes once all its fragments are
// in (RFC 7383 §2.6.1). It holds DECRYPTED, already authenticated fragment
// content: the engine opens and verifies every SKF payload with the SA's
// keys before calling Add, and Reset (or dropping the Reassembler) when the
// SA goes away.
//
// Messages are told apart by Message ID and the Response flag (a peer's
// request and the response to our request may share an ID). Limits bound
// memory to about MaxMessages × MaxBytes: the oldest message in progress is
// dropped to make room for a new one. Held reports what it holds, for
// budgets across Reassemblers. Timeouts are the caller's: it calls Expire
// with its clock.
//
// A Reassembler is not safe for concurrent use; the engine keeps one per IKE
// SA under that SA's lock. The zero value is ready to use with the defaults.
type Reassembler struct {
	MaxFragments int // refuse Total Fragments above this; 0: DefaultMaxFragments
	MaxBytes     int // refuse messages growing above this many bytes; 0: DefaultMaxBytes
	MaxMessages  int // messages in progress at once; 0: DefaultMaxMessages

	pending map[fragKey]*partial
	held    int // Held: the sum of partial.held
}

type fragKey struct {
	messageID uint32
	response  bool
}

type partial struct {
	total   uint16
	inner   PayloadType // from fragment 1
	parts   [][]byte    // index Number-1; nil until received
	got     int
	size    int // content bytes
	held    int // memory: fragment buffers and their slice headers
	started time.Time
}

// fragCost is the memory Add keeps for a fragment of n content bytes: its
// buffer and its slice header in partial.parts.
func fragCost(n int) int { return n + 24 }

// MaxGrowth is the most Held can grow by when Add takes fragment f with n
// content bytes (a fragment that starts a message adds its slots). A
// caller keeping a memory budget over several Reassemblers checks it
// before Add.
func MaxGrowth(f *Fragment, n int) int { return fragCost(n) + 24*int(f.Total) }

// Add adds the decrypted content plain of fragment f, received in a message
// with header h, at time now. It returns the inner payload type (of fragment
// 1) and the concatenated inner payload bytes when f completes its message,
// ready for ParsePayloads; otherwise nil, nil. A duplicate fragment is
// ignored. Add copies plain.
func (r *Reassembler) Add(h Header, f *Fragment, plain []byte, now time.Time) (PayloadType, []byte, error) {
	if f == nil || f.Number == 0 || f.Total == 0 || f.Number > f.Total {
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: bad fragment: %w", ErrBadValue)
	}
	if f.Number == 1 && f.Inner == PayloadNone {
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: fragment 1 names no inner payload: %w", ErrBadValue)
	}
	maxFrag, maxBytes, maxMsgs := r.limits()
	if int(f.Total) > maxFrag {
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: message %d: Total Fragments %d > %d: %w", h.MessageID, f.Total, maxFrag, ErrTooManyFragments)
	}
	if len(plain) > maxBytes {
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: message %d: fragment of %d bytes > %d: %w", h.MessageID, len(plain), maxBytes, ErrReassemblyTooLarge)
	}
	k := fragKey{h.MessageID, h.Flags&FlagResponse != 0}
	if r.pending == nil {
		r.pending = make(map[fragKey]*partial)
	}
	p := r.pending[k]
	switch {
	case p != nil && f.Total < p.total:
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: message %d: Total Fragments %d < %d: %w", h.MessageID, f.Total, p.total, ErrStaleFragment)
	case p != nil && f.Total > p.total:
		// The sender refragmented (smaller fragments, more of them):
		// RFC 7383 §2.6.1 says to start over with the new set.
		r.drop(k)
		p = nil
	}
	if p == nil {
		for len(r.pending) >= maxMsgs {
			r.dropOldest()
		}
		p = &partial{total: f.Total, parts: make([][]byte, f.Total), started: now}
		p.held = 24 * int(f.Total) // parts
		r.held += p.held
		r.pending[k] = p
	}
	i := int(f.Number) - 1
	if p.parts[i] != nil {
		return PayloadNone, nil, nil // retransmitted duplicate
	}
	if p.size+len(plain) > maxBytes {
		r.drop(k)
		return PayloadNone, nil, fmt.Errorf("wire: reassembly: message %d: more than %d bytes: %w", h.MessageID, maxBytes, ErrReassemblyTooLarge)
	}
	p.parts[i] = append(make([]byte, 0, len(plain)), plain...) // non-nil even when empty
	p.got++
	p.size += len(plain)
	p.held += fragCost(len(plain))
	r.held += fragCost(len(plain))
	if f.Number == 1 {
		p.inner = f.Inner
	}
	if p.got < int(p.total) {
		return PayloadNone, nil, nil
	}
	r.drop(k)
	out := make([]byte, 0, p.size)
	for _, b := range p.parts {
		out = append(out, b...)
	}
	return p.inner, out, nil
}

// Expire drops the messages whose first fragment arrived before cutoff and
// returns how many it dropped.
func (r *Reassembler) Expire(cutoff time.Time) int {
	n := 0
	for k, p := range r.pending {
		if p.started.Before(cutoff) {
			r.drop(k)
			n++
		}
	}
	return n
}

// Pending is the number of messages in progress.
func (r *Reassembler) Pending() int { return len(r.pending) }

// Held is the memory the messages in progress hold, in bytes: the
// fragments' content plus a slice header for each fragment slot (what
// Add allocates, not counting the allocator's rounding).
func (r *Reassembler) Held() int { return r.held }

// Reset drops every message in progress.
func (r *Reassembler) Reset() {
	clear(r.pending)
	r.held = 0
}

func (r *Reassembler) drop(k fragKey) {
	if p := r.pending[k]; p != nil {
		r.held -= p.held
		delete(r.pending, k)
	}
}

func (r *Reassembler) limits() (maxFrag, maxBytes, maxMsgs int) {
	maxFrag, maxBytes, maxMsgs = r.MaxFragments, r.MaxBytes, r.MaxMessages
	if maxFrag <= 0 {
		maxFrag = DefaultMaxFragments
	}
	if maxFrag > 0xffff {
		maxFrag = 0xffff
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxMsgs <= 0 {
		maxMsgs = DefaultMaxMessages
	}
	return
}

func (r *Reassembler) dropOldest() {
	var oldest fragKey
	var t time.Time
	first := true
	for k, p := range r.pending {
		if first || p.started.Before(t) {
			oldest, t, first = k, p.started, false
		}
	}
	r.drop(oldest)
}

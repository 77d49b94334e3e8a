package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func frag(n, total uint16, inner PayloadType) *Fragment {
	return &Fragment{Inner: inner, Number: n, Total: total}
}

func TestReassembleGoldenInner(t *testing.T) {
	// The decrypted IKE_AUTH content split into three fragments, added out
	// of order with a duplicate: the result parses to the golden payloads.
	plain := unhex(t, goldenInner)
	parts := [][]byte{plain[:50], plain[50:51], plain[51:]}
	h := Header{MessageID: 1, Flags: FlagInitiator}
	var r Reassembler
	for _, step := range []struct {
		n    uint16
		done bool
	}{{3, false}, {1, false}, {3, false}, {2, true}} {
		inner := PayloadNone
		if step.n == 1 {
			inner = PayloadIDi
		}
		buf := append([]byte(nil), parts[step.n-1]...)
		first, out, err := r.Add(h, frag(step.n, 3, inner), buf, t0)
		if err != nil {
			t.Fatalf("fragment %d: %v", step.n, err)
		}
		clear(buf) // Add must have copied
		if (out != nil) != step.done {
			t.Fatalf("fragment %d: complete=%v, want %v", step.n, out != nil, step.done)
		}
		if !step.done {
			continue
		}
		if first != PayloadIDi || !bytes.Equal(out, plain) {
			t.Fatalf("reassembled %v %x, want IDi %x", first, out, plain)
		}
		ps, err := ParsePayloads(first, out)
		if err != nil || !reflect.DeepEqual(ps, goldenInnerPayloads) {
			t.Fatalf("ParsePayloads of reassembly: %v %s", err, dump(ps...))
		}
	}
	if r.Pending() != 0 {
		t.Fatalf("%d pending after completion", r.Pending())
	}
}

func TestReassembler(t *testing.T) {
	req := Header{MessageID: 5, Flags: FlagInitiator}
	resp := Header{MessageID: 5, Flags: FlagInitiator | FlagResponse}

	t.Run("single fragment", func(t *testing.T) {
		var r Reassembler
		first, out, err := r.Add(req, frag(1, 1, PayloadNotify), []byte{1, 2}, t0)
		if err != nil || first != PayloadNotify || !bytes.Equal(out, []byte{1, 2}) {
			t.Fatalf("got %v %x %v", first, out, err)
		}
	})
	t.Run("request and response with one ID are apart", func(t *testing.T) {
		var r Reassembler
		mustAdd(t, &r, req, frag(1, 2, PayloadIDi), []byte("req1"), false)
		mustAdd(t, &r, resp, frag(2, 2, PayloadNone), []byte("resp2"), false)
		if r.Pending() != 2 {
			t.Fatalf("pending %d, want 2", r.Pending())
		}
		if out := mustAdd(t, &r, resp, frag(1, 2, PayloadIDr), []byte("resp1"), true); string(out) != "resp1resp2" {
			t.Fatalf("response %q", out)
		}
		if out := mustAdd(t, &r, req, frag(2, 2, PayloadNone), []byte("req2"), true); string(out) != "req1req2" {
			t.Fatalf("request %q", out)
		}
	})
	t.Run("refragmented with more fragments starts over", func(t *testing.T) {
		var r Reassembler
		mustAdd(t, &r, req, frag(1, 2, PayloadIDi), []byte("old1"), false)
		mustAdd(t, &r, req, frag(1, 3, PayloadIDi), []byte("a"), false)
		if _, _, err := r.Add(req, frag(2, 2, PayloadNone), []byte("old2"), t0); !errors.Is(err, ErrStaleFragment) {
			t.Fatalf("old fragment: %v, want ErrStaleFragment", err)
		}
		mustAdd(t, &r, req, frag(2, 3, PayloadNone), []byte("b"), false)
		if out := mustAdd(t, &r, req, frag(3, 3, PayloadNone), []byte("c"), true); string(out) != "abc" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("too many fragments", func(t *testing.T) {
		r := Reassembler{MaxFragments: 4}
		if _, _, err := r.Add(req, frag(1, 5, PayloadIDi), nil, t0); !errors.Is(err, ErrTooManyFragments) {
			t.Fatalf("err %v", err)
		}
		var d Reassembler
		if _, _, err := d.Add(req, frag(1, DefaultMaxFragments+1, PayloadIDi), nil, t0); !errors.Is(err, ErrTooManyFragments) {
			t.Fatalf("default limit: err %v", err)
		}
		if r.Pending() != 0 || d.Pending() != 0 {
			t.Fatal("refused fragment left state")
		}
	})
	t.Run("too many bytes drops the message", func(t *testing.T) {
		r := Reassembler{MaxBytes: 10}
		mustAdd(t, &r, req, frag(1, 3, PayloadIDi), make([]byte, 6), false)
		if _, _, err := r.Add(req, frag(2, 3, PayloadNone), make([]byte, 5), t0); !errors.Is(err, ErrReassemblyTooLarge) {
			t.Fatalf("err %v", err)
		}
		if r.Pending() != 0 {
			t.Fatal("message kept after exceeding MaxBytes")
		}
		if _, _, err := r.Add(req, frag(1, 3, PayloadIDi), make([]byte, 11), t0); !errors.Is(err, ErrReassemblyTooLarge) {
			t.Fatalf("single big fragment: err %v", err)
		}
	})
	t.Run("oldest message evicted", func(t *testing.T) {
		r := Reassembler{MaxMessages: 2}
		for id := uint32(1); id <= 3; id++ {
			mustAddAt(t, &r, Header{MessageID: id}, frag(1, 2, PayloadIDi), []byte{byte(id)}, false, t0.Add(time.Duration(id)*time.Second))
		}
		if r.Pending() != 2 {
			t.Fatalf("pending %d, want 2", r.Pending())
		}
		// Message 1 was evicted: its second fragment starts a new, incomplete one.
		mustAdd(t, &r, Header{MessageID: 1}, frag(2, 2, PayloadNone), []byte{9}, false)
		// Message 3 is still there.
		if out := mustAdd(t, &r, Header{MessageID: 3}, frag(2, 2, PayloadNone), []byte{4}, true); !bytes.Equal(out, []byte{3, 4}) {
			t.Fatalf("message 3: %x", out)
		}
	})
	t.Run("expire and reset", func(t *testing.T) {
		var r Reassembler
		mustAddAt(t, &r, Header{MessageID: 1}, frag(1, 2, PayloadIDi), nil, false, t0)
		mustAddAt(t, &r, Header{MessageID: 2}, frag(1, 2, PayloadIDi), nil, false, t0.Add(time.Minute))
		if n := r.Expire(t0.Add(30 * time.Second)); n != 1 || r.Pending() != 1 {
			t.Fatalf("Expire dropped %d, %d pending", n, r.Pending())
		}
		r.Reset()
		if r.Pending() != 0 {
			t.Fatal("Reset kept messages")
		}
	})
	t.Run("bad fragments", func(t *testing.T) {
		var r Reassembler
		for _, f := range []*Fragment{nil, frag(0, 1, PayloadIDi), frag(2, 1, PayloadNone), frag(1, 0, PayloadIDi), frag(1, 2, PayloadNone)} {
			if _, _, err := r.Add(req, f, nil, t0); !errors.Is(err, ErrBadValue) {
				t.Errorf("%+v: err %v, want ErrBadValue", f, err)
			}
		}
		if r.Pending() != 0 {
			t.Fatal("bad fragments left state")
		}
	})
}

func mustAdd(t *testing.T, r *Reassembler, h Header, f *Fragment, plain []byte, done bool) []byte {
	t.Helper()
	return mustAddAt(t, r, h, f, plain, done, t0)
}

func mustAddAt(t *testing.T, r *Reassembler, h Header, f *Fragment, plain []byte, done bool, now time.Time) []byte {
	t.Helper()
	_, out, err := r.Add(h, f, plain, now)
	if err != nil {
		t.Fatalf("Add %d/%d: %v", f.Number, f.Total, err)
	}
	if (out != nil) != done {
		t.Fatalf("Add %d/%d: complete=%v, want %v", f.Number, f.Total, out != nil, done)
	}
	return out
}

func TestReassemblerHeld(t *testing.T) {
	req := Header{MessageID: 1, Flags: FlagInitiator}
	chunk := make([]byte, 100)
	var r Reassembler
	r.MaxMessages = 2
	add := func(h Header, n, total uint16) {
		t.Helper()
		inner := PayloadNone
		if n == 1 {
			inner = PayloadIDi
		}
		f := frag(n, total, inner)
		before := r.Held()
		if _, _, err := r.Add(h, f, chunk, t0); err != nil {
			t.Fatalf("fragment %d/%d: %v", n, total, err)
		}
		if g := r.Held() - before; g > MaxGrowth(f, len(chunk)) {
			t.Fatalf("fragment %d/%d: Held grew by %d > MaxGrowth %d", n, total, g, MaxGrowth(f, len(chunk)))
		}
	}
	add(req, 1, 4)
	add(req, 2, 4)
	if h := r.Held(); h < 200 || h > 200+6*24 {
		t.Fatalf("two 100-byte fragments of four: Held %d", h)
	}
	add(req, 2, 4) // duplicate: nothing more held
	if h := r.Held(); h > 200+6*24 {
		t.Fatalf("duplicate fragment: Held %d", h)
	}
	add(req, 1, 5) // refragmented: the old set goes
	if h := r.Held(); h > 100+6*24 {
		t.Fatalf("after refragmentation: Held %d", h)
	}
	for n := uint16(2); n <= 5; n++ {
		add(req, n, 5)
	}
	if r.Held() != 0 || r.Pending() != 0 {
		t.Fatalf("completed: Held %d, %d pending", r.Held(), r.Pending())
	}
	// Dropped messages release what they held: oldest, expiry, size, Reset.
	for id := uint32(10); id < 13; id++ {
		add(Header{MessageID: id}, 1, 2)
	}
	if r.Pending() != 2 || r.Held() > 2*(124+48) {
		t.Fatalf("three messages with room for two: %d pending, Held %d", r.Pending(), r.Held())
	}
	r.Expire(t0.Add(time.Second))
	if r.Held() != 0 {
		t.Fatalf("expired: Held %d", r.Held())
	}
	r.MaxBytes = 150
	add(Header{MessageID: 20}, 1, 2)
	if _, _, err := r.Add(Header{MessageID: 20}, frag(2, 2, PayloadNone), chunk, t0); !errors.Is(err, ErrReassemblyTooLarge) {
		t.Fatalf("over MaxBytes: %v", err)
	}
	if r.Held() != 0 {
		t.Fatalf("message over MaxBytes dropped: Held %d", r.Held())
	}
	add(Header{MessageID: 21}, 1, 2)
	r.Reset()
	if r.Held() != 0 {
		t.Fatalf("Reset: Held %d", r.Held())
	}
}

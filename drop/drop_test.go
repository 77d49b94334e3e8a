package drop

import "testing"

// The counter names are exported at /metrics and read by scripts: this
// list is theirs, in index order, and must not change.
func TestCounterNames(t *testing.T) {
	want := []string{"none", "no-sa", "replay", "auth-failed", "bad-padding", "malformed", "seq-overflow",
		"expired", "no-room", "policy-discard", "policy-mismatch", "spoofed-source", "too-big", "dummy",
		"fragment", "ecn-drop", "encap-mismatch", "nat-keepalive", "seq-reservation", "seq-refused",
		"bad-tag", "ethertype", "fragment-policy", "bad-neighbor", "wrong-destination", "reordered"}
	if int(NumCounted) != len(want) {
		t.Fatalf("NumCounted = %d, want %d", NumCounted, len(want))
	}
	for i, w := range want {
		if got := Reason(i).String(); got != w {
			t.Errorf("Reason(%d) = %q, want %q", i, got, w)
		}
	}
}

func TestEveryReasonNamedAndCounted(t *testing.T) {
	seen := map[string]Reason{}
	for r := None; r < NumReasons; r++ {
		n := r.String()
		if n == "" {
			t.Errorf("Reason(%d) has no name", r)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("%d and %d are both %q", o, r, n)
		}
		seen[n] = r
		if c := r.Counted(); c >= NumCounted || (r < NumCounted && c != r) || (r >= NumCounted && c == None) {
			t.Errorf("%v counted as %v", r, c)
		}
	}
	if NumReasons.Counted() != NumCounted || NumReasons.String() != "Drop(36)" {
		t.Errorf("out of range: %v counted as %v", NumReasons, NumReasons.Counted())
	}
}

//go:build linux

package etcd

import (
	"errors"
	"slices"
	"testing"

	"github.com/vifsec/vifsec/internal/store"
)

// TestIntegrationEtcdSeqs: reservations are stored beside the desired
// state (not in Load, no conflict with it), renewed only while no one
// else changed them, and a move takes one to another host so that the
// old host can no longer extend it; a move fails if the source renewed
// the reservation after the move read it.
func TestIntegrationEtcdSeqs(t *testing.T) {
	ec := startEtcd(t, 1)
	c := openCluster(t, ec, nil, "/sq")
	h1 := view(t, c, "h1")
	if _, err := h1.Load(); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h1.Commit([]store.Op{store.Put(store.KindSA, "s1", []byte("sa1")), store.Put(store.KindSeq, "s1", []byte("r1")),
		store.Put(store.KindSA, "s2", []byte("sa2")), store.Put(store.KindSeq, "s2", []byte("r1"))}))
	recs, err := h1.Load()
	must(err)
	for _, r := range recs {
		if r.Kind == store.KindSeq {
			t.Errorf("Load returned a reservation: %s", r.Name)
		}
	}
	// A renewal is no change of the desired state: a commit validated
	// before it still succeeds.
	gone, err := h1.RenewSeqs([]store.Record{{Kind: store.KindSeq, Name: "s1", Value: []byte("r2")}, {Kind: store.KindSeq, Name: "nope", Value: []byte("x")}})
	must(err)
	if !slices.Equal(gone, []string{"nope"}) {
		t.Errorf("RenewSeqs gone = %v, want [nope] (never created by a renewal)", gone)
	}
	must(h1.Commit([]store.Op{store.Put(store.KindSP, "p", []byte("sp"))}))

	// Move s1 (read by a third party's views) to h2.
	src, dst := view(t, c, "h1"), view(t, c, "h2")
	_, err = src.Load()
	must(err)
	_, err = dst.Load()
	must(err)
	seqs, err := src.LoadSeqs()
	must(err)
	var r1 []byte
	for _, r := range seqs {
		if r.Name == "s1" {
			r1 = r.Value
		}
	}
	if string(r1) != "r2" {
		t.Fatalf("LoadSeqs s1 = %q, want r2", r1)
	}
	must(c.Move(t.Context(), src, []store.Op{store.Delete(store.KindSA, "s1"), store.Delete(store.KindSeq, "s1")},
		dst, []store.Op{store.Put(store.KindSA, "s1", []byte("sa1")), store.Put(store.KindSeq, "s1", r1)}))
	gone, err = h1.RenewSeqs([]store.Record{{Kind: store.KindSeq, Name: "s1", Value: []byte("r3")}, {Kind: store.KindSeq, Name: "s2", Value: []byte("r2")}})
	must(err)
	if !slices.Equal(gone, []string{"s1"}) {
		t.Errorf("after the move the old host renewed: gone = %v, want [s1]", gone)
	}
	got, err := dst.LoadSeqs()
	must(err)
	if len(got) != 1 || got[0].Name != "s1" || string(got[0].Value) != "r2" {
		t.Errorf("h2's reservations %v, want s1=r2", got)
	}

	// The source renews s2 after a move read it: the move fails.
	src2 := view(t, c, "h1")
	_, err = src2.Load()
	must(err)
	_, err = src2.LoadSeqs()
	must(err)
	_, err = dst.Load()
	must(err)
	_, err = h1.RenewSeqs([]store.Record{{Kind: store.KindSeq, Name: "s2", Value: []byte("r3")}})
	must(err)
	err = c.Move(t.Context(), src2, []store.Op{store.Delete(store.KindSA, "s2"), store.Delete(store.KindSeq, "s2")},
		dst, []store.Op{store.Put(store.KindSA, "s2", []byte("sa2")), store.Put(store.KindSeq, "s2", []byte("r2"))})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("move over a renewed reservation: %v, want ErrConflict", err)
	}
}

package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := OpenBolt(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, path
}

func TestBoltCommitLoad(t *testing.T) {
	b, path := openTemp(t)
	ops := []Op{
		Put(KindSP, "sp1", []byte(`{"a":1}`)),
		Put(KindTenant, "t1", []byte(`{}`)),
		Put(KindSA, "sa1", []byte(`key`)),
		Put(KindSA, "sa0", []byte(``)),
	}
	if err := b.Commit(ops); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit([]Op{Delete(KindSA, "sa1"), Delete(KindVM, "absent")}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Kind)+"/"+r.Name+"="+string(r.Value))
	}
	want := "tenant/t1={} sa/sa0= sp/sp1={\"a\":1}"
	if strings.Join(got, " ") != want {
		t.Errorf("Load = %q, want %q", strings.Join(got, " "), want)
	}

	// Reopen: everything is still there.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ops); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	b2, err := OpenBolt(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	recs2, err := b2.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs2) != len(recs) {
		t.Errorf("after reopen: %d records, want %d", len(recs2), len(recs))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestBoltCommitIsAtomic(t *testing.T) {
	b, _ := openTemp(t)
	if err := b.Commit([]Op{Put(KindSA, "keep", []byte("v1"))}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ops  []Op
	}{
		{"unknown kind", []Op{Put(KindSA, "new", []byte("x")), {Kind: "bogus", Name: "n", Value: []byte("x")}}},
		{"empty name", []Op{Delete(KindSA, "keep"), Put(KindSA, "", []byte("x"))}},
		// bbolt refuses keys over 32768 bytes inside the transaction,
		// after the first op was applied: the whole commit must roll back.
		{"key too long", []Op{Delete(KindSA, "keep"), Put(KindSA, strings.Repeat("k", 40000), []byte("x"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := b.Commit(tt.ops); err == nil {
				t.Fatal("Commit succeeded, want error")
			}
			recs, err := b.Load()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Name != "keep" || string(recs[0].Value) != "v1" {
				t.Errorf("state changed by a failed commit: %+v", recs)
			}
		})
	}
}

func TestLockDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
	// A second lock (another open file description) is refused at once.
	_, err = LockDir(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second LockDir = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), "--state") {
		t.Errorf("message %q should name the holder's pid and --state", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Unlock: %v", err)
	}
	l2.Unlock()
}

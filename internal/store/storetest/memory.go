// Package storetest provides an in-memory store.Store for tests, with
// failure injection to prove that a failed commit changes nothing.
package storetest

import (
	"bytes"
	"errors"
	"sort"
	"sync"

	"github.com/vifsec/vifsec/internal/store"
)

// ErrInjected is what Commit returns while FailCommits is set.
var ErrInjected = errors.New("storetest: injected commit failure")

// Memory is a store.Store held in maps. It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	data    map[store.Kind]map[string][]byte
	commits int
	fail    bool
	closed  bool
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	m := &Memory{data: map[store.Kind]map[string][]byte{}}
	for _, k := range append(store.Kinds(), store.KindSeq) {
		m.data[k] = map[string][]byte{}
	}
	return m
}

// FailCommits makes every later Commit fail (changing nothing) until
// called with false.
func (m *Memory) FailCommits(fail bool) {
	m.mu.Lock()
	m.fail = fail
	m.mu.Unlock()
}

// Commits is the number of successful commits.
func (m *Memory) Commits() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commits
}

// Get returns the stored value of (kind, name), or nil.
func (m *Memory) Get(kind store.Kind, name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data[kind][name])
}

// Commit implements store.Store.
func (m *Memory) Commit(ops []store.Op) error {
	if err := store.CheckOps(ops); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return store.ErrClosed
	}
	if m.fail {
		return ErrInjected
	}
	for _, op := range ops {
		if op.Value == nil {
			delete(m.data[op.Kind], op.Name)
		} else {
			m.data[op.Kind][op.Name] = bytes.Clone(op.Value)
		}
	}
	m.commits++
	return nil
}

// Load implements store.Store.
func (m *Memory) Load() ([]store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, store.ErrClosed
	}
	var out []store.Record
	for _, k := range store.Kinds() {
		names := make([]string, 0, len(m.data[k]))
		for n := range m.data[k] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, store.Record{Kind: k, Name: n, Value: bytes.Clone(m.data[k][n])})
		}
	}
	return out, nil
}

// LoadSeqs implements store.SeqStore.
func (m *Memory) LoadSeqs() ([]store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, store.ErrClosed
	}
	var out []store.Record
	for n, v := range m.data[store.KindSeq] {
		out = append(out, store.Record{Kind: store.KindSeq, Name: n, Value: bytes.Clone(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RenewSeqs implements store.SeqStore; it fails while FailCommits is set.
func (m *Memory) RenewSeqs(recs []store.Record) (gone []string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, store.ErrClosed
	}
	if m.fail {
		return nil, ErrInjected
	}
	seqs := m.data[store.KindSeq]
	for _, r := range recs {
		if _, ok := seqs[r.Name]; !ok && r.Name != store.SeqEpochName {
			gone = append(gone, r.Name)
			continue
		}
		seqs[r.Name] = bytes.Clone(r.Value)
	}
	return gone, nil
}

// Close implements store.Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

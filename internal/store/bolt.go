package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded Store: one bbolt file, one bucket per Kind. Every
// Commit is one read-write transaction, fsynced before it returns, so a
// kill -9 at any moment leaves the file at the last acknowledged commit.
type Bolt struct {
	mu sync.RWMutex // guards db against Close
	db *bolt.DB
}

// FileMode is the mode of the state file: it holds SA keys.
const FileMode = 0o600

// OpenBolt opens (creating if needed) the bbolt file at path with mode
// 0600. It waits at most lockTimeout for bbolt's own file lock; callers
// normally hold a lock on the state directory already (see LockDir).
func OpenBolt(path string, lockTimeout time.Duration) (*Bolt, error) {
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	db, err := bolt.Open(path, FileMode, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state file %s: locked by another process", path)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// bbolt creates the file with mode, but an older file may be wider.
	if err := os.Chmod(path, FileMode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, k := range append(Kinds(), KindSeq) {
			if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: create buckets: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Commit implements Store.
func (b *Bolt) Commit(ops []Op) error {
	if err := CheckOps(ops); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return ErrClosed
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			bk := tx.Bucket([]byte(op.Kind))
			var err error
			if op.Value == nil {
				err = bk.Delete([]byte(op.Name))
			} else {
				err = bk.Put([]byte(op.Name), op.Value)
			}
			if err != nil {
				return fmt.Errorf("%s %q: %w", op.Kind, op.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Load implements Store.
func (b *Bolt) Load() ([]Record, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return nil, ErrClosed
	}
	var out []Record
	err := b.db.View(func(tx *bolt.Tx) error {
		for _, k := range Kinds() {
			err := tx.Bucket([]byte(k)).ForEach(func(name, v []byte) error {
				out = append(out, Record{Kind: k, Name: string(name), Value: bytes.Clone(v)})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load: %w", err)
	}
	return out, nil
}

// LoadSeqs implements SeqStore.
func (b *Bolt) LoadSeqs() ([]Record, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return nil, ErrClosed
	}
	var out []Record
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(KindSeq)).ForEach(func(name, v []byte) error {
			out = append(out, Record{Kind: KindSeq, Name: string(name), Value: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: load reservations: %w", err)
	}
	return out, nil
}

// RenewSeqs implements SeqStore. The state directory's lock makes this
// process the file's only writer, so a record is gone only if it was
// deleted (its SA removed) since.
func (b *Bolt) RenewSeqs(recs []Record) (gone []string, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return nil, ErrClosed
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(KindSeq))
		for _, r := range recs {
			if r.Name == "" {
				return fmt.Errorf("empty name for kind %s", KindSeq)
			}
			if r.Name != SeqEpochName && bk.Get([]byte(r.Name)) == nil {
				gone = append(gone, r.Name)
				continue
			}
			if err := bk.Put([]byte(r.Name), r.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: renew reservations: %w", err)
	}
	return gone, nil
}

// Close flushes and closes the file. It waits for commits in progress.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return nil
	}
	err := b.db.Close()
	b.db = nil
	return err
}

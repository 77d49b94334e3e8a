package etcd

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vifsec/vifsec/internal/store"
)

// Sequence reservations (store.KindSeq) of host H live at
//
//	P/seq/H/NAME
//
// outside P/hosts/H/: they are not desired state, so writing one neither
// rewrites H's guard (no commit conflicts with them) nor wakes any watch.
// A View remembers the mod revision of every reservation it read or wrote;
// RenewSeqs writes a record only if its mod revision is still that one, so
// once a VM's move (Cluster.Move) took an SA's reservation to another
// host, the old host can no longer extend it: it stops sending at the
// limit it had, and the new host continues above it.
const seqDir = "seq/"

func (c *Cluster) seqKey(host, name string) string { return c.prefix + seqDir + host + "/" + name }

// seqBatch bounds the records of one renewal transaction (etcd's
// --max-txn-ops, 128 by default, counts compares and puts separately).
const seqBatch = 100

// LoadSeqs implements store.SeqStore.
func (v *View) LoadSeqs() ([]store.Record, error) {
	ctx, cancel := v.c.opCtx(context.Background())
	defer cancel()
	pfx := v.c.seqKey(v.host, "")
	resp, err := v.c.cli.Get(ctx, pfx, clientv3.WithPrefix())
	v.c.observe(err)
	if err != nil {
		if unavailable(err) {
			return nil, v.c.unreachable("store: load reservations", err)
		}
		return nil, fmt.Errorf("store: load reservations: %w", err)
	}
	out := make([]store.Record, 0, len(resp.Kvs))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seqRev == nil {
		v.seqRev = map[string]int64{}
	}
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), pfx)
		plain, _, err := v.c.kr.Open(v.c.loc(string(kv.Key)), kv.Value)
		if err != nil {
			plain = nil // unreadable: the daemon refuses that SA
		}
		v.seqRev[name] = kv.ModRevision
		out = append(out, store.Record{Kind: store.KindSeq, Name: name, Value: plain})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RenewSeqs implements store.SeqStore.
func (v *View) RenewSeqs(recs []store.Record) (gone []string, err error) {
	for len(recs) > 0 {
		n := min(len(recs), seqBatch)
		g, err := v.renewSeqs(recs[:n])
		gone = append(gone, g...)
		if err != nil {
			return gone, err
		}
		recs = recs[n:]
	}
	return gone, nil
}

func (v *View) renewSeqs(recs []store.Record) (gone []string, err error) {
	v.mu.Lock()
	known := make([]int64, len(recs))
	for i, r := range recs {
		known[i] = v.seqRev[r.Name]
	}
	v.mu.Unlock()
	cmps := make([]clientv3.Cmp, 0, len(recs))
	puts := make([]clientv3.Op, 0, len(recs))
	for i, r := range recs {
		k := v.c.seqKey(v.host, r.Name)
		if r.Name != store.SeqEpochName {
			if known[i] == 0 {
				// Never seen, or deleted by this view's commit: RenewSeqs
				// creates nothing.
				gone = append(gone, r.Name)
				continue
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", known[i]))
		}
		puts = append(puts, clientv3.OpPut(k, string(v.c.kr.Seal(v.c.loc(k), r.Value))))
	}
	if len(puts) == 0 {
		return gone, nil
	}
	var kept []store.Record
	for _, r := range recs {
		if !slices.Contains(gone, r.Name) {
			kept = append(kept, r)
		}
	}
	recs = kept
	ctx, cancel := v.c.opCtx(context.Background())
	defer cancel()
	resp, err := v.c.cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
	v.c.observe(err)
	if err != nil {
		if unavailable(err) {
			return nil, v.c.unreachable("store: renew reservations", err)
		}
		return nil, fmt.Errorf("store: renew reservations: %w", err)
	}
	if resp.Succeeded {
		v.mu.Lock()
		if v.seqRev == nil {
			v.seqRev = map[string]int64{}
		}
		for _, r := range recs {
			v.seqRev[r.Name] = resp.Header.Revision
		}
		v.mu.Unlock()
		return gone, nil
	}
	if len(recs) == 1 {
		v.mu.Lock()
		delete(v.seqRev, recs[0].Name)
		v.mu.Unlock()
		return append(gone, recs[0].Name), nil
	}
	// Some record changed under us: find which, one at a time (rare: a
	// move or a removal of an SA between two renewals).
	for _, r := range recs {
		g, err := v.renewSeqs([]store.Record{r})
		if err != nil {
			return gone, err
		}
		gone = append(gone, g...)
	}
	return gone, nil
}

// seqCmp is the compare a commit of op makes on a reservation when it
// must not change one it did not see (a move carries the value it read).
func (v *View) seqCmp(op store.Op) clientv3.Cmp {
	v.mu.Lock()
	rev := v.seqRev[op.Name]
	v.mu.Unlock()
	return clientv3.Compare(clientv3.ModRevision(v.c.seqKey(v.host, op.Name)), "=", rev)
}

// noteSeqCommit records the mod revision of reservations a commit at rev
// wrote or deleted.
func (v *View) noteSeqCommit(ops []store.Op, rev int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, op := range ops {
		if op.Kind != store.KindSeq {
			continue
		}
		if v.seqRev == nil {
			v.seqRev = map[string]int64{}
		}
		if op.Value == nil {
			delete(v.seqRev, op.Name)
		} else {
			v.seqRev[op.Name] = rev
		}
	}
}

var _ store.SeqStore = (*View)(nil)

package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vifsec/vifsec/internal/store"
)

// viewState is a view's records as last read from etcd: opened values by
// etcd key, and the revision each key space is known up to.
type viewState struct {
	mu         sync.Mutex
	recs       map[string]store.Record
	unreadable map[string]string // etcd key → why
	rev        revs
}

// loadState reads the fleet-wide records and host's at one revision.
// A read has no effect, so it is retried (after a member failed, the
// client may need a moment to move to another) until the op timeout.
func (c *Cluster) loadState(ctx context.Context, host string) (*viewState, error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	var resp *clientv3.TxnResponse
	var err error
	for {
		resp, err = c.cli.Txn(ctx).Then(
			clientv3.OpGet(c.prefix+fleetDir, clientv3.WithPrefix()),
			clientv3.OpGet(c.hostDir(host), clientv3.WithPrefix()),
		).Commit()
		if err == nil || !unavailable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.observe(err)
	if err != nil {
		if unavailable(err) {
			return nil, c.unreachable("store: load", err)
		}
		return nil, fmt.Errorf("store: load from etcd %s: %w", c.endpoints, err)
	}
	st := &viewState{recs: map[string]store.Record{}, unreadable: map[string]string{},
		rev: revs{resp.Header.Revision, resp.Header.Revision}}
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			c.putKV(st, host, string(kv.Key), kv.Value)
		}
	}
	return st, nil
}

// parseKey returns the kind and name of a record key of host's view;
// ok is false for guards and foreign keys.
func (c *Cluster) parseKey(host, key string) (kind store.Kind, name string, ok bool) {
	var rest string
	if r, found := strings.CutPrefix(key, c.prefix+fleetDir); found {
		rest = r
	} else if r, found := strings.CutPrefix(key, c.hostDir(host)); found {
		rest = r
	} else {
		return "", "", false
	}
	k, n, found := strings.Cut(rest, "/")
	if !found || k == "" || n == "" {
		return "", "", false
	}
	return store.Kind(k), n, true
}

// putKV records a stored key/value in st (the caller holds st.mu or owns st).
func (c *Cluster) putKV(st *viewState, host, key string, sealed []byte) {
	kind, name, ok := c.parseKey(host, key)
	if !ok {
		return
	}
	plain, _, err := c.kr.Open(c.loc(key), sealed)
	if err != nil {
		delete(st.recs, key)
		st.unreadable[key] = err.Error()
		return
	}
	delete(st.unreadable, key)
	st.recs[key] = store.Record{Kind: kind, Name: name, Value: plain}
}

// records returns st's records in Load's order.
func (st *viewState) records() []store.Record {
	order := map[store.Kind]int{}
	for i, k := range store.Kinds() {
		order[k] = i + 1
	}
	out := make([]store.Record, 0, len(st.recs))
	for _, r := range st.recs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		oa, ob := order[a.Kind], order[b.Kind]
		if oa == 0 {
			oa = len(order) + 1
		}
		if ob == 0 {
			ob = len(order) + 1
		}
		if oa != ob {
			return oa < ob
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out
}

func (st *viewState) unreadableList() []string {
	out := make([]string, 0, len(st.unreadable))
	for k, why := range st.unreadable {
		out = append(out, k+": "+why)
	}
	sort.Strings(out)
	return out
}

// snapshot copies st (the caller holds st.mu). Values are shared: they
// are never modified after being stored.
func (st *viewState) snapshot() *store.Snapshot {
	recs := make([]store.Record, 0, len(st.recs))
	for _, r := range st.recs {
		recs = append(recs, r)
	}
	return &store.Snapshot{Records: recs, Revision: max(st.rev.fleet, st.rev.host), Unreadable: st.unreadableList(), Token: st.rev}
}

// Watch implements store.Watcher. It watches the fleet-wide records and
// the host's from the revision of the last Load (Load first), resumes from
// the last revision it saw after a disconnect (etcd replays what it
// missed), and reads everything again if that revision was compacted
// away. While etcd cannot be reached it keeps retrying, and the daemon
// keeps its last state.
func (v *View) Watch(ctx context.Context) <-chan *store.Snapshot {
	out := make(chan *store.Snapshot)
	v.mu.Lock()
	st := v.loaded
	v.loaded = nil
	v.mu.Unlock()
	kick := make(chan struct{}, 1)
	var cur struct {
		sync.Mutex
		st *viewState
	}
	cur.st = st
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	// The publisher builds a snapshot only when the reader is ready for
	// one, so a burst of changes costs one snapshot per converge, not one
	// per event.
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			cur.Lock()
			s := cur.st
			cur.Unlock()
			if s == nil {
				continue
			}
			s.mu.Lock()
			snap := s.snapshot()
			s.mu.Unlock()
			select {
			case out <- snap:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		if st != nil {
			poke()
		}
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			if st == nil {
				s, err := v.c.loadState(ctx, v.host)
				if err != nil {
					v.c.log.Warn("fleet store: read of the desired state failed; retrying", "host", v.host, "err", err)
					sleep(ctx, &backoff)
					continue
				}
				st = s
				cur.Lock()
				cur.st = st
				cur.Unlock()
				poke()
			}
			resync, progressed, err := v.consume(ctx, st, poke)
			if ctx.Err() != nil {
				return
			}
			if progressed {
				backoff = 100 * time.Millisecond
			}
			if resync {
				v.c.log.Warn("fleet store: watch revision compacted away; reading the whole desired state again", "host", v.host)
				st = nil
				continue
			}
			if err != nil {
				v.c.observe(err)
				v.c.log.Debug("fleet store: watch interrupted; resuming from the last revision", "host", v.host,
					"fleet_rev", st.rev.fleet, "host_rev", st.rev.host, "err", err)
			}
			sleep(ctx, &backoff)
		}
	}()
	return out
}

func sleep(ctx context.Context, backoff *time.Duration) {
	d := *backoff/2 + rand.N(*backoff/2+1)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	*backoff = min(*backoff*2, 2*time.Second)
}

// consume watches both key spaces from st's revisions until an error;
// resync says the revision was compacted away.
func (v *View) consume(ctx context.Context, st *viewState, poke func()) (resync, progressed bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	st.mu.Lock()
	from := st.rev
	st.mu.Unlock()
	fch := v.c.cli.Watch(wctx, v.c.prefix+fleetDir, clientv3.WithPrefix(), clientv3.WithRev(from.fleet+1), clientv3.WithProgressNotify())
	hch := v.c.cli.Watch(wctx, v.c.hostDir(v.host), clientv3.WithPrefix(), clientv3.WithRev(from.host+1), clientv3.WithProgressNotify())
	for {
		var resp clientv3.WatchResponse
		var ok, fleet bool
		select {
		case <-ctx.Done():
			return false, progressed, ctx.Err()
		case resp, ok = <-fch:
			fleet = true
		case resp, ok = <-hch:
		}
		if !ok {
			return false, progressed, errors.New("watch closed")
		}
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return true, progressed, nil
		}
		if err := resp.Err(); err != nil {
			return false, progressed, err
		}
		if resp.Canceled {
			return false, progressed, errors.New("watch canceled by the server")
		}
		v.c.observe(nil)
		if resp.Created {
			continue
		}
		st.mu.Lock()
		rev := &st.rev.host
		if fleet {
			rev = &st.rev.fleet
		}
		changed := false
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case mvccpb.PUT:
				v.c.putKV(st, v.host, key, ev.Kv.Value)
			case mvccpb.DELETE:
				delete(st.recs, key)
				delete(st.unreadable, key)
			}
			*rev = max(*rev, ev.Kv.ModRevision)
			changed = true
		}
		if len(resp.Events) == 0 && resp.IsProgressNotify() {
			// Every event up to the header's revision has been sent.
			*rev = max(*rev, resp.Header.Revision)
		}
		st.mu.Unlock()
		if changed {
			progressed = true
			poke()
		}
	}
}

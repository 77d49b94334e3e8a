package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vifsec/vifsec/internal/store"
)

// StatusTTL is how long a host's status key outlives its last heartbeat:
// a host whose vifsecd stopped, or lost the cluster, disappears from the
// live hosts after at most this long.
const StatusTTL = 10 * time.Second

// statusEvery is how often a changed status is rewritten at most (urgent
// changes, such as a change of health, at once).
const statusEvery = time.Second

// Heartbeat keeps host's status key P/status/HOST alive until ctx is done,
// then deletes it. Every interval it renews the key's lease (a request
// that needs the cluster's leader, so it is also the store's health
// probe) and, if status returns a value that differs from the one stored,
// rewrites it: at once if urgent, else at most once a second. After a loss of
// the cluster long enough for the lease to expire, a new lease is taken.
func (c *Cluster) Heartbeat(ctx context.Context, host string, interval time.Duration, status func() (value []byte, urgent bool)) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lease clientv3.LeaseID
	var last []byte
	var lastPut time.Time
	key := c.statusKey(host)
	for {
		func() {
			bctx, cancel := context.WithTimeout(ctx, interval)
			defer cancel()
			if lease != 0 {
				_, err := c.cli.KeepAliveOnce(bctx, lease)
				if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err != nil && strings.Contains(err.Error(), rpctypes.ErrLeaseNotFound.Error())) {
					lease, last = 0, nil
				} else if err != nil {
					c.log.Debug("heartbeat failed", "err", err, "unavailable", unavailable(err))
					c.observe(err)
					return
				}
			}
			if lease == 0 {
				resp, err := c.cli.Grant(bctx, int64(StatusTTL/time.Second))
				c.observe(err)
				if err != nil {
					return
				}
				lease = resp.ID
			}
			c.observe(nil)
			val, urgent := status()
			if last != nil && (bytes.Equal(val, last) || (!urgent && time.Since(lastPut) < statusEvery)) {
				return
			}
			_, err := c.cli.Put(bctx, key, string(val), clientv3.WithLease(lease))
			c.observe(err)
			if err == nil {
				last, lastPut = val, time.Now()
			}
		}()
		select {
		case <-ctx.Done():
			if lease != 0 {
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				c.cli.Revoke(rctx, lease) // deletes the status key at once
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// Statuses returns the status value of every live host (by host name) and
// the names of every member host, sorted.
func (c *Cluster) Statuses(ctx context.Context) (status map[string][]byte, members []string, err error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(ctx).Then(
		clientv3.OpGet(c.prefix+statusDir, clientv3.WithPrefix()),
		clientv3.OpGet(c.prefix+membersDir, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	c.observe(err)
	if err != nil {
		if unavailable(err) {
			return nil, nil, c.unreachable("store: read fleet status", err)
		}
		return nil, nil, fmt.Errorf("store: read fleet status: %w", err)
	}
	status = map[string][]byte{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		status[strings.TrimPrefix(string(kv.Key), c.prefix+statusDir)] = kv.Value
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		members = append(members, strings.TrimPrefix(string(kv.Key), c.prefix+membersDir))
	}
	for h := range status {
		if _, found := sort.Find(len(members), func(i int) int { return strings.Compare(h, members[i]) }); !found {
			members = append(members, h)
			sort.Strings(members)
		}
	}
	return status, members, nil
}

// HostRecords reads the records of kind of every member host at one
// revision, which it returns (for View.RequireHostsUnchanged).
func (c *Cluster) HostRecords(ctx context.Context, kind store.Kind) (map[string][]store.Record, int64, error) {
	if !HostScoped(kind) {
		return nil, 0, fmt.Errorf("store: kind %s is fleet-wide", kind)
	}
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	resp, err := c.cli.Get(ctx, c.prefix+membersDir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	c.observe(err)
	if err != nil {
		if unavailable(err) {
			return nil, 0, c.unreachable("store: read hosts", err)
		}
		return nil, 0, err
	}
	rev := resp.Header.Revision
	out := map[string][]store.Record{}
	for _, kv := range resp.Kvs {
		h := strings.TrimPrefix(string(kv.Key), c.prefix+membersDir)
		pfx := c.hostDir(h) + string(kind) + "/"
		r, err := c.cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev))
		c.observe(err)
		if err != nil {
			return nil, 0, fmt.Errorf("store: read %s records of host %s: %w", kind, h, err)
		}
		for _, kv := range r.Kvs {
			plain, _, err := c.kr.Open(c.loc(string(kv.Key)), kv.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("store: %s: %w", c.loc(string(kv.Key)), err)
			}
			out[h] = append(out[h], store.Record{Kind: kind, Name: strings.TrimPrefix(string(kv.Key), pfx), Value: plain})
		}
	}
	return out, rev, nil
}

// Rewrap seals again, with the current key, every record of the fleet-wide
// key space and of host's that is sealed with an older key of the keyring
// (after a KEK rotation). Each record is rewritten only if it did not
// change meanwhile. It returns how many it rewrote and how many it could
// not open (sealed with a key not in the keyring).
func (c *Cluster) Rewrap(ctx context.Context, host string) (rewrapped, unreadable int, err error) {
	cur := c.kr.CurrentID()
	for _, pfx := range []string{c.prefix + fleetDir, c.hostDir(host)} {
		gctx, cancel := c.opCtx(ctx)
		resp, err := c.cli.Get(gctx, pfx, clientv3.WithPrefix())
		cancel()
		c.observe(err)
		if err != nil {
			return rewrapped, unreadable, fmt.Errorf("store: rewrap: %w", err)
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			if strings.HasSuffix(key, "/"+guardName) {
				continue
			}
			plain, kid, err := c.kr.Open(c.loc(key), kv.Value)
			if err != nil {
				unreadable++
				continue
			}
			if kid == cur {
				clear(plain)
				continue
			}
			sealed := c.kr.Seal(c.loc(key), plain)
			clear(plain)
			pctx, cancel := c.opCtx(ctx)
			tr, err := c.cli.Txn(pctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
				Then(clientv3.OpPut(key, string(sealed))).Commit()
			cancel()
			c.observe(err)
			if err != nil {
				return rewrapped, unreadable, fmt.Errorf("store: rewrap %s: %w", c.loc(key), err)
			}
			if tr.Succeeded {
				rewrapped++
			}
		}
	}
	return rewrapped, unreadable, nil
}

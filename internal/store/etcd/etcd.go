package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// Layout of the keys under the prefix P of --store (e.g. /vifsec):
//
//	P/fleet/KIND/NAME        fleet-wide records: tenants, IKE policies, certificates, CRLs
//	P/fleet/~guard           rewritten by every commit that changes fleet-wide records
//	P/hosts/HOST/KIND/NAME   records of one host: config, uplink, vm, sa, sp, fdb
//	P/hosts/HOST/~guard      rewritten by every commit that changes HOST's records
//	P/members/HOST           exists once HOST ran vifsecd or was given desired state
//	P/status/HOST            HOST's status (JSON, not sealed), bound to a lease
//	P/seq/HOST/NAME          HOST's outbound sequence reservation of SA NAME (seq.go)
//
// Record values are sealed (Keyring.Seal) bound to their location; status
// values are not (they hold names and counts only).
const (
	fleetDir   = "fleet/"
	hostsDir   = "hosts/"
	membersDir = "members/"
	statusDir  = "status/"
	guardName  = "~guard"
)

// hostKinds are the kinds whose records belong to one host. Every other
// kind (tenant, policy, certificate, crl, and any later one) is
// fleet-wide.
var hostKinds = map[store.Kind]bool{
	store.KindConfig: true, store.KindUplink: true, store.KindVM: true,
	store.KindSA: true, store.KindSP: true, store.KindFDB: true,
}

// HostScoped reports whether records of kind k belong to one host (VM
// bindings, the uplink, manual SAs and SPs, FDB entries, the IPsec
// switch) rather than to the whole fleet (tenants, IKE policies,
// certificates, CRLs).
func HostScoped(k store.Kind) bool { return hostKinds[k] }

// DefaultPrefix is the key prefix when --store gives none.
const DefaultPrefix = "/vifsec"

// ParseURL parses --store etcd://HOST:PORT[,HOST:PORT...]/PREFIX into the
// endpoints (HOST:PORT) and the key prefix (DefaultPrefix if none).
func ParseURL(s string) (endpoints []string, prefix string, err error) {
	const form = "write etcd://HOST:PORT[,HOST:PORT...]/PREFIX, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379/vifsec"
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, "", fmt.Errorf("--store %q: not an etcd URL; %s", s, form)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return nil, "", fmt.Errorf("--store %q: no etcd endpoint; %s", s, form)
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, "", fmt.Errorf("--store %q: endpoint %q is not HOST:PORT; %s", s, h, form)
		}
		endpoints = append(endpoints, h)
	}
	path = strings.Trim(path, "/")
	if path == "" {
		return endpoints, DefaultPrefix, nil
	}
	for _, seg := range strings.Split(path, "/") {
		if err := tenant.ValidName(seg); err != nil {
			return nil, "", fmt.Errorf("--store %q: prefix segment %q: %v", s, seg, err)
		}
	}
	return endpoints, "/" + path, nil
}

// TLSConfig builds the client TLS configuration from the --etcd-cacert,
// --etcd-cert and --etcd-key files. cert and key go together; cacert alone
// verifies the servers without a client certificate.
func TLSConfig(cacert, cert, key string) (*tls.Config, error) {
	if cacert == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", cacert)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together: give both (a client certificate and its key) or neither")
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// Options configure Open.
type Options struct {
	// Endpoints are HOST:PORT of etcd members (ParseURL).
	Endpoints []string
	// Prefix is the key prefix, e.g. "/vifsec"; "" means DefaultPrefix.
	Prefix string
	// TLS, if set, makes the connections TLS (https endpoints).
	TLS *tls.Config
	// Username and Password authenticate to etcd (auth enabled); "" means none.
	Username, Password string
	// Keyring seals record values; required.
	Keyring *Keyring
	// OpTimeout bounds one commit or load; 0 means 5 s. While the store
	// is degraded, commits give up after a fifth of it.
	OpTimeout time.Duration
	// Logger receives store events (degraded, resync); nil discards.
	Logger *slog.Logger
}

// Cluster is a connection to an etcd cluster holding a fleet's desired
// state under one prefix. It is safe for concurrent use. Views (Host)
// give the Store of one host.
type Cluster struct {
	cli       *clientv3.Client
	prefix    string // with a trailing '/'
	endpoints string
	kr        *Keyring
	log       *slog.Logger
	opTimeout time.Duration
	health    health
}

// Open connects to the etcd cluster. It does not wait for the cluster to
// answer: use Ping, or the first Load.
func Open(o Options) (*Cluster, error) {
	if o.Keyring == nil {
		return nil, errors.New("--kek-file is required with an etcd store: SA keys and PSKs are stored sealed with it")
	}
	if len(o.Endpoints) == 0 {
		return nil, errors.New("--store: no etcd endpoint")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scheme := "http://"
	if o.TLS != nil {
		scheme = "https://"
	}
	eps := make([]string, len(o.Endpoints))
	for i, e := range o.Endpoints {
		eps[i] = scheme + e
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  o.TLS,
		Username:             o.Username,
		Password:             o.Password,
		Logger:               zap.NewNop(),
		MaxUnaryRetries:      2,
		// Reconnect within 2 s of a member's return (gRPC's default
		// backoff grows to 2 minutes): the daemon reconciles as soon as
		// the store is back.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("--store: connect to etcd %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	c := &Cluster{cli: cli, prefix: strings.TrimSuffix(o.Prefix, "/") + "/", endpoints: strings.Join(o.Endpoints, ","),
		kr: o.Keyring, log: log, opTimeout: o.OpTimeout}
	c.health.ok = true
	c.health.since = time.Now()
	return c, nil
}

// Close closes the connection.
func (c *Cluster) Close() error { return c.cli.Close() }

// Client is the etcd client, for tests and tools.
func (c *Cluster) Client() *clientv3.Client { return c.cli }

// Prefix is the key prefix, with a trailing '/'.
func (c *Cluster) Prefix() string { return c.prefix }

// Ping does one linearizable read (it needs a quorum).
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	_, err := c.cli.Get(ctx, c.prefix+membersDir, clientv3.WithCountOnly())
	c.observe(err)
	return err
}

// Health is what the store's client knows of the cluster.
type Health struct {
	// OK is false while the cluster cannot be reached with a quorum
	// (the store is degraded): commits fail, the watch is stalled, and
	// the daemon keeps its last state.
	OK bool
	// Since is when OK last changed.
	Since time.Time
	// LastContact is the last time a quorum answered.
	LastContact time.Time
	// Err is the last failure while degraded.
	Err string
}

type health struct {
	mu          sync.Mutex
	ok          bool
	since       time.Time
	lastContact time.Time
	failing     time.Time // first failure since the last success; zero if none
	failures    int       // consecutive
	err         error
}

// degradeAfter is how long failures must last (with at least two in a
// row) before the store is reported degraded: one member dying makes the
// client fail over, which can cost one request.
const degradeAfter = 1500 * time.Millisecond

// observe records the outcome of a request that needed a quorum.
func (c *Cluster) observe(err error) {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if err == nil || !unavailable(err) {
		h.lastContact = now
		h.failing, h.failures, h.err = time.Time{}, 0, nil
		if !h.ok {
			h.ok, h.since = true, now
			c.log.Info("fleet store reachable again: reconciling", "etcd", c.endpoints)
		}
		return
	}
	if h.failures == 0 {
		h.failing = now
	}
	h.failures++
	h.err = err
	if h.ok && h.failures >= 2 && now.Sub(h.failing) >= degradeAfter {
		h.ok, h.since = false, now
		c.log.Error("fleet store unreachable (no etcd quorum): degraded; the data path keeps its last state, changes are refused until it returns",
			"etcd", c.endpoints, "err", err)
	}
}

// Health reports the store's health.
func (c *Cluster) Health() Health {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Health{OK: h.ok, Since: h.since, LastContact: h.lastContact}
	if !h.ok && h.err != nil {
		out.Err = h.err.Error()
	}
	return out
}

// unavailable says whether err means the cluster could not be reached
// with a quorum: anything but an answer of the servers that refuses the
// request (conflict, too many ops, compacted, auth, permission).
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "context deadline exceeded") {
		return true
	}
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied,
		codes.Unauthenticated, codes.AlreadyExists, codes.OutOfRange, codes.ResourceExhausted:
		return false
	}
	return true
}

// opCtx bounds one request: OpTimeout, a fifth of it while degraded.
func (c *Cluster) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.opTimeout
	if !c.Health().OK {
		d /= 5
	}
	return context.WithTimeout(ctx, d)
}

// unreachable wraps an unavailability error for operators.
func (c *Cluster) unreachable(what string, err error) error {
	return fmt.Errorf("%s: %w (etcd %s has no quorum or does not answer: %v); the data path keeps its last state; retry when `vifsec fleet status` no longer says degraded",
		what, ErrUnavailable, c.endpoints, err)
}

// ErrUnavailable is wrapped by errors of requests that failed because the
// cluster could not be reached with a quorum.
var ErrUnavailable = errors.New("fleet store unreachable")

// ErrConflict is wrapped by Commit's error when the desired state of the
// view changed after the daemon read it (another writer got there first).
// Nothing was changed; the caller may retry once its state has caught up.
var ErrConflict = errors.New("the desired state changed meanwhile (another writer); nothing changed, try again")

func (c *Cluster) fleetKey(kind store.Kind, name string) string {
	return c.prefix + fleetDir + string(kind) + "/" + name
}

func (c *Cluster) hostKey(host string, kind store.Kind, name string) string {
	return c.prefix + hostsDir + host + "/" + string(kind) + "/" + name
}

func (c *Cluster) fleetGuard() string           { return c.prefix + fleetDir + guardName }
func (c *Cluster) hostGuard(host string) string { return c.prefix + hostsDir + host + "/" + guardName }
func (c *Cluster) hostDir(host string) string   { return c.prefix + hostsDir + host + "/" }
func (c *Cluster) statusKey(host string) string { return c.prefix + statusDir + host }
func (c *Cluster) memberKey(host string) string { return c.prefix + membersDir + host }

// loc is a key without the prefix: the location sealed values are bound to.
func (c *Cluster) loc(key string) string { return strings.TrimPrefix(key, c.prefix) }

// Host returns the Store of host name: the fleet-wide records and the
// host's own. The name must be a valid vifsec name (--host-id).
func (c *Cluster) Host(name string) (*View, error) {
	if err := tenant.ValidName(name); err != nil {
		return nil, fmt.Errorf("--host-id: %w", err)
	}
	return &View{c: c, host: name}, nil
}

// revs is the OCC base of a view: per key space (the fleet-wide records,
// the host's), a revision up to which the daemon's state reflects every
// change, at least that of the last change it reflects. Each space's
// guard key is rewritten by every change of the space, so "the guard's
// mod revision ≤ base" means "nothing changed that the daemon has not
// seen".
type revs struct{ fleet, host int64 }

// View is the Store of one host on a Cluster. Commit maps each op to the
// fleet-wide or the host's key space by its kind (HostScoped).
//
// Commits are optimistic: a commit succeeds only if neither the
// fleet-wide records nor the host's changed since the state the daemon
// validated the change against (the last Load, the last accepted watch
// snapshot, or the view's last commit); else it fails with ErrConflict
// and changes nothing. This keeps the daemon's rules (unique names, no
// dangling references) true when several daemons write one host.
//
// It is safe for concurrent use.
type View struct {
	c    *Cluster
	host string

	mu         sync.Mutex
	base       revs
	conflicted bool
	// hostsSince, if not zero, makes the next commit require that no
	// host's records changed after that revision (RequireHostsUnchanged).
	hostsSince int64
	loaded     *viewState // from the last Load, for Watch
	unreadable []string
	seqRev     map[string]int64 // reservation name → mod revision last read or written (seq.go)
}

// HostName is the view's host.
func (v *View) HostName() string { return v.host }

// Cluster is the view's cluster.
func (v *View) Cluster() *Cluster { return v.c }

func (v *View) key(op store.Op) string {
	if op.Kind == store.KindSeq {
		return v.c.seqKey(v.host, op.Name)
	}
	if HostScoped(op.Kind) {
		return v.c.hostKey(v.host, op.Kind, op.Name)
	}
	return v.c.fleetKey(op.Kind, op.Name)
}

// Commit implements store.Store: one etcd transaction, acknowledged by a
// quorum when it returns nil.
func (v *View) Commit(ops []store.Op) error {
	if err := store.CheckOps(ops); err != nil {
		return err
	}
	v.mu.Lock()
	base, since := v.base, v.hostsSince
	v.mu.Unlock()
	rev, err := v.c.commit(context.Background(), []change{{v: v, ops: ops, base: base, member: true}}, since)
	if err == nil {
		v.noteSeqCommit(ops, rev)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if errors.Is(err, ErrConflict) {
		v.conflicted = true
	}
	if err != nil {
		return err
	}
	// The daemon applies ops to the state it validated them against,
	// which no other commit changed (the guards said so): its state now
	// includes the change at rev in the key spaces the ops touched.
	for _, op := range ops {
		if op.Kind == store.KindSeq {
			continue
		}
		if HostScoped(op.Kind) {
			v.base.host = max(v.base.host, rev)
		} else {
			v.base.fleet = max(v.base.fleet, rev)
		}
	}
	return nil
}

// TakeConflict reports whether a commit failed with ErrConflict since the
// last call, and clears the flag.
func (v *View) TakeConflict() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.conflicted
	v.conflicted = false
	return c
}

// RequireHostsUnchanged makes the following commits also require that no
// host's records changed after revision rev (0 turns it off). A fleet-wide
// check that read every host at rev (a tenant still in use on some host)
// uses it so that its answer still holds when the commit lands.
func (v *View) RequireHostsUnchanged(rev int64) {
	v.mu.Lock()
	v.hostsSince = rev
	v.mu.Unlock()
}

// change is one view's part of a commit.
type change struct {
	v    *View
	ops  []store.Op
	base revs
	// blind skips the OCC comparison (bulk loading).
	blind bool
	// member registers the host in P/members/.
	member bool
	// seqCmp: each reservation op requires the reservation to be as the
	// view last saw it (a move carries the value it read).
	seqCmp bool
}

// commit runs one transaction of every change; it returns its revision.
func (c *Cluster) commit(ctx context.Context, chs []change, hostsSince int64) (int64, error) {
	var cmps []clientv3.Cmp
	var then []clientv3.Op
	fleetChanged := false
	hostsChanged := map[string]bool{}
	for _, ch := range chs {
		if !ch.blind {
			cmps = append(cmps,
				clientv3.Compare(clientv3.ModRevision(c.fleetGuard()), "<", ch.base.fleet+1),
				clientv3.Compare(clientv3.ModRevision(c.hostGuard(ch.v.host)), "<", ch.base.host+1))
		}
		for _, op := range ch.ops {
			k := ch.v.key(op)
			if op.Value == nil {
				then = append(then, clientv3.OpDelete(k))
			} else {
				then = append(then, clientv3.OpPut(k, string(c.kr.Seal(c.loc(k), op.Value))))
			}
			if op.Kind == store.KindSeq {
				// Not desired state: no guard (see seq.go).
				if ch.seqCmp {
					cmps = append(cmps, ch.v.seqCmp(op))
				}
				continue
			}
			if HostScoped(op.Kind) {
				hostsChanged[ch.v.host] = true
			} else {
				fleetChanged = true
			}
		}
		if ch.member {
			then = append(then, clientv3.OpPut(c.memberKey(ch.v.host), ""))
		}
	}
	if hostsSince > 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(c.prefix+hostsDir), "<", hostsSince+1).WithPrefix())
	}
	if fleetChanged {
		then = append(then, clientv3.OpPut(c.fleetGuard(), ""))
	}
	hosts := make([]string, 0, len(hostsChanged))
	for h := range hostsChanged {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		then = append(then, clientv3.OpPut(c.hostGuard(h), ""))
	}
	if len(then) == 0 {
		return 0, nil
	}
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(then...).Commit()
	c.observe(err)
	n := 0
	for _, ch := range chs {
		n += len(ch.ops)
	}
	switch {
	case err != nil && unavailable(err):
		return 0, c.unreachable("store: commit not confirmed", err)
	case err != nil && (errors.Is(err, rpctypes.ErrTooManyOps) || strings.Contains(err.Error(), rpctypes.ErrTooManyOps.Error())):
		return 0, fmt.Errorf("store: a change of %d records is larger than etcd accepts in one transaction (etcd --max-txn-ops, default 128): nothing changed; raise --max-txn-ops on every etcd member", n)
	case err != nil:
		return 0, fmt.Errorf("store: commit to etcd %s: %w", c.endpoints, err)
	case !resp.Succeeded:
		return 0, fmt.Errorf("store: %w", ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Load implements store.Store: the fleet-wide records and the host's, at
// one revision, grouped by kind in the order of store.Kinds (kinds this
// version does not know last), sorted by name. Records that cannot be
// opened (sealed with a key not in --kek-file, or altered) are left out
// and listed by Unreadable.
func (v *View) Load() ([]store.Record, error) {
	st, err := v.c.loadState(context.Background(), v.host)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.base = st.rev
	v.loaded = st
	v.unreadable = st.unreadableList()
	v.mu.Unlock()
	return st.records(), nil
}

// Unreadable lists the records the last Load could not open, with why.
func (v *View) Unreadable() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.unreadable...)
}

// Revision is the revision the daemon's state reflects (the larger of the
// fleet-wide and the host's).
func (v *View) Revision() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return max(v.base.fleet, v.base.host)
}

// Close implements store.Store; the Cluster is closed by its owner.
func (v *View) Close() error { return nil }

// Accept is called by the daemon, holding its state lock, before it
// converges to snap: it reports false if snap is older than the state the
// daemon already holds (its own commit overtook the watch; a newer
// snapshot follows), else records snap as the daemon's state and reports
// true.
func (v *View) Accept(snap *store.Snapshot) bool {
	r, ok := snap.Token.(revs)
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.fleet < v.base.fleet || r.host < v.base.host {
		return false
	}
	v.base = r
	v.unreadable = append(v.unreadable[:0], snap.Unreadable...)
	return true
}

// Write commits ops without comparing them to any state: for bulk loading
// of desired state that was validated elsewhere (the fleet benchmark). The
// daemon of the host refuses, and reports, records that break its rules
// when it converges. It registers the host.
func (v *View) Write(ctx context.Context, ops []store.Op) error {
	if err := store.CheckOps(ops); err != nil {
		return err
	}
	_, err := v.c.commit(ctx, []change{{v: v, ops: ops, blind: true, member: true}}, 0)
	return err
}

// Register records host as a member of the fleet (idempotent).
func (v *View) Register(ctx context.Context) error {
	ctx, cancel := v.c.opCtx(ctx)
	defer cancel()
	k := v.c.memberKey(v.host)
	_, err := v.c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, "")).Commit()
	v.c.observe(err)
	if err != nil && unavailable(err) {
		return v.c.unreachable("store: register host "+v.host, err)
	}
	return err
}

// Move is one transaction that deletes del from the view from and puts
// put into the view to, if neither view's records (nor the fleet-wide
// ones) changed since each view's state was read, nor any sequence
// reservation (store.KindSeq) del deletes since from last read it
// (LoadSeqs): a move carries an SA's reservation as it read it, and the
// source must not have extended it meanwhile. It registers to. The
// views' OCC bases are left as they are: the daemons learn of the move
// through their watches.
func (c *Cluster) Move(ctx context.Context, from *View, del []store.Op, to *View, put []store.Op) error {
	if err := store.CheckOps(append(append([]store.Op(nil), del...), put...)); err != nil {
		return err
	}
	from.mu.Lock()
	fb := from.base
	from.mu.Unlock()
	to.mu.Lock()
	tb := to.base
	to.mu.Unlock()
	rev, err := c.commit(ctx, []change{{v: from, ops: del, base: fb, seqCmp: true}, {v: to, ops: put, base: tb, member: true}}, 0)
	if err == nil {
		from.noteSeqCommit(del, rev)
		to.noteSeqCommit(put, rev)
	}
	return err
}

// Sync waits until the daemon's state (the view's OCC base) includes every
// change of the fleet-wide records and of the host's that the store holds
// now, so that a request validated next sees the latest state.
func (v *View) Sync(ctx context.Context) error {
	if !v.c.Health().OK {
		return v.c.unreachable("store: sync", errors.New("degraded"))
	}
	ctx, cancel := context.WithTimeout(ctx, min(v.c.opTimeout, 2*time.Second))
	defer cancel()
	resp, err := v.c.cli.Txn(ctx).Then(clientv3.OpGet(v.c.fleetGuard()), clientv3.OpGet(v.c.hostGuard(v.host))).Commit()
	v.c.observe(err)
	if err != nil {
		if unavailable(err) {
			return v.c.unreachable("store: sync", err)
		}
		return fmt.Errorf("store: sync: %w", err)
	}
	var need revs
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		need.fleet = kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		need.host = kvs[0].ModRevision
	}
	for {
		v.mu.Lock()
		ok := v.base.fleet >= need.fleet && v.base.host >= need.host
		v.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: this daemon has not caught up with the store's revision %d in time: %w", max(need.fleet, need.host), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Keyring is the cluster's keyring.
func (c *Cluster) Keyring() *Keyring { return c.kr }

var (
	_ store.Store   = (*View)(nil)
	_ store.Watcher = (*View)(nil)
)

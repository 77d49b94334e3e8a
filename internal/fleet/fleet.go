// Package fleet runs a vifsecd that takes its desired state from a fleet
// store (etcd, internal/store/etcd): it builds the host's daemon from the
// store, converges it to every change the store's watch delivers, keeps
// the host's status key alive, and serves the fleet side of the API (api.Fleet): requests for another
// host's objects, fleet status, VM moves.
//
// It must not touch the data path: when the store is lost, the daemon
// simply stops changing, and the data path keeps forwarding on its last
// state.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/etcd"
)

// Config configures Open.
type Config struct {
	Cluster *etcd.Cluster
	// Host is this host's name in the fleet (--host-id).
	Host string
	// StateDir is the host's state directory (its lock).
	StateDir string
	Version  string
	Logger   *slog.Logger
	// Daemon configures the host's daemon and the temporary ones.
	Daemon *daemon.Config
	// Heartbeat is the interval of the store's health probe and status
	// renewal; 0 means 1 s.
	Heartbeat time.Duration
}

// Fleet is a running fleet host. It implements api.Fleet.
type Fleet struct {
	cfg     Config
	log     *slog.Logger
	view    *etcd.View
	d       *daemon.Daemon
	conv    *daemon.Converger
	started time.Time

	mu        sync.Mutex
	problems  []string
	lastState string // last reported health state

	writeMu sync.Mutex // serialises API writes through this daemon
}

// Open builds the host's daemon from the store. While the store cannot be
// read it retries (logging every few seconds) until ctx is done.
func Open(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	v, err := cfg.Cluster.Host(cfg.Host)
	if err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger, view: v, started: time.Now().UTC().Round(time.Second)}
	dcfg := *cfg.Daemon
	dcfg.Logger = cfg.Logger
	var lastLog time.Time
	for {
		d, conv, probs, err := daemon.NewFleet(v, &dcfg, &daemon.FleetOptions{Reserve: true})
		if err == nil {
			f.d, f.conv = d, conv
			f.setProblems(probs, v.Unreadable())
			break
		}
		if !errors.Is(err, etcd.ErrUnavailable) {
			return nil, err
		}
		if time.Since(lastLog) > 5*time.Second {
			f.log.Error("waiting for the fleet store to read this host's desired state", "host", cfg.Host, "err", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fleet store never answered: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := v.Register(ctx); err != nil {
		f.log.Warn("could not register the host in the fleet store (retried by the next commit)", "err", err)
	}
	return f, nil
}

// Daemon is the host's daemon.
func (f *Fleet) Daemon() *daemon.Daemon { return f.d }

// View is the host's store view.
func (f *Fleet) View() *etcd.View { return f.view }

func (f *Fleet) setProblems(probs []daemon.Problem, unreadable []string) {
	var s []string
	for _, p := range probs {
		s = append(s, p.String())
	}
	for _, u := range unreadable {
		s = append(s, "unreadable "+u)
	}
	f.mu.Lock()
	if len(unreadable) > 0 && !slices.Equal(s, f.problems) {
		f.log.Error("stored records this host cannot open (is the key that sealed them in --kek-file?)", "records", strings.Join(unreadable, "; "))
	}
	f.problems = s
	f.mu.Unlock()
}

// Run converges the daemon to the store until ctx is done: the watch, the
// heartbeat (status key and health probe) and KEK rewrap. The daemon's
// own Run (which keeps the SAs' sequence reservations) and the data path
// are the caller's.
func (f *Fleet) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		f.cfg.Cluster.Heartbeat(ctx, f.cfg.Host, f.cfg.Heartbeat, f.statusValue)
	})
	wg.Go(func() {
		n, bad, err := f.cfg.Cluster.Rewrap(ctx, f.cfg.Host)
		switch {
		case err != nil:
			f.log.Warn("KEK rewrap did not finish (done again at the next start)", "err", err)
		case n > 0 || bad > 0:
			f.log.Info("records sealed again with the current key-encryption key", "rewrapped", n, "unreadable", bad, "kek_id", f.cfg.Cluster.Keyring().CurrentID())
		}
	})
	ch := f.view.Watch(ctx)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case snap, ok := <-ch:
			if !ok {
				continue
			}
			res := f.conv.Converge(snap.Records, func() bool { return f.view.Accept(snap) })
			if !res.Skipped {
				f.setProblems(res.Problems, snap.Unreadable)
			}
		}
	}
}

// Self implements api.Fleet.
func (f *Fleet) Self() string { return f.cfg.Host }

func stateOf(h etcd.Health) string {
	if h.OK {
		return "ok"
	}
	return "degraded"
}

// Health implements api.Fleet.
func (f *Fleet) Health() api.Health {
	h := f.cfg.Cluster.Health()
	sum := f.d.Summary()
	f.mu.Lock()
	probs := append([]string{}, f.problems...)
	f.mu.Unlock()
	return api.Health{Store: "etcd", Host: f.cfg.Host, State: stateOf(h), Since: h.Since, LastContact: h.LastContact, Error: h.Err,
		Revision: f.view.Revision(), Tenants: sum.Tenants, VMs: len(sum.VMs), SAs: sum.SAs, Problems: probs}
}

// maxStatusVMs bounds the VMs a status key lists (etcd's request limit is
// 1.5 MiB by default; a VM takes about 60 bytes).
const maxStatusVMs = 8192

// self returns this host's status.
func (f *Fleet) self() api.FleetHost {
	h := f.cfg.Cluster.Health()
	sum := f.d.Summary()
	out := api.FleetHost{Host: f.cfg.Host, State: stateOf(h), Version: f.cfg.Version, Since: f.started,
		Revision: f.view.Revision(), Tenants: sum.Tenants, SAs: sum.SAs, VMCount: len(sum.VMs), VMs: []api.FleetVM{}}
	for i, v := range sum.VMs {
		if i == maxStatusVMs {
			break
		}
		vif := v.VIF
		if vif != "" && vif != "attached" {
			vif = "detached" // why: the host's own `vifsec vm list`; the status stays small
		}
		out.VMs = append(out.VMs, api.FleetVM{Name: v.Name, Tenant: v.Tenant, VIF: vif, SAs: v.SAs})
	}
	f.mu.Lock()
	out.Problems = append(out.Problems, f.problems...)
	f.mu.Unlock()
	return out
}

// statusValue is the heartbeat's status: urgent when the state changed.
func (f *Fleet) statusValue() ([]byte, bool) {
	s := f.self()
	s.Revision = 0 // not a reason to rewrite the key
	b, _ := json.Marshal(s)
	f.mu.Lock()
	urgent := s.State != f.lastState
	f.lastState = s.State
	f.mu.Unlock()
	return b, urgent
}

// Status implements api.Fleet: every member host with its last status,
// this host's own state as it sees it. When the store cannot be read, only
// this host is known.
func (f *Fleet) Status(ctx context.Context) (api.FleetStatus, error) {
	me := f.self()
	out := api.FleetStatus{Self: f.cfg.Host, Store: me.State}
	st, members, err := f.cfg.Cluster.Statuses(ctx)
	if err != nil {
		out.Store = "degraded"
		me.State = "degraded"
		out.Error = err.Error()
		out.Hosts = []api.FleetHost{me}
		return out, nil
	}
	for _, h := range members {
		if h == f.cfg.Host {
			out.Hosts = append(out.Hosts, me)
			continue
		}
		raw, ok := st[h]
		if !ok {
			out.Hosts = append(out.Hosts, api.FleetHost{Host: h, State: "down", VMs: []api.FleetVM{}})
			continue
		}
		var fh api.FleetHost
		if err := json.Unmarshal(raw, &fh); err != nil || fh.Host != h {
			fh = api.FleetHost{Host: h, State: "unknown", Problems: []string{"unreadable status"}}
		}
		if fh.VMs == nil {
			fh.VMs = []api.FleetVM{}
		}
		out.Hosts = append(out.Hosts, fh)
	}
	if !slices.Contains(members, f.cfg.Host) {
		out.Hosts = append(out.Hosts, me)
		slices.SortFunc(out.Hosts, func(a, b api.FleetHost) int { return strings.Compare(a.Host, b.Host) })
	}
	return out, nil
}

// remote builds a temporary daemon over host's desired state.
func (f *Fleet) remote(host string) (*daemon.Daemon, *etcd.View, error) {
	v, err := f.cfg.Cluster.Host(host)
	if err != nil {
		return nil, nil, &api.Error{Status: 400, Code: "invalid", Message: strings.Replace(err.Error(), "--host-id", "--host", 1)}
	}
	dcfg := *f.cfg.Daemon
	dcfg.Logger = f.log.With("host", host)
	d, _, _, err := daemon.NewFleet(v, &dcfg, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("--host %s: read its desired state: %w", host, err)
	}
	return d, v, nil
}

// Exec implements api.Fleet.
func (f *Fleet) Exec(ctx context.Context, host string, o api.ExecOptions, fn func(*daemon.Daemon)) (bool, error) {
	if !o.Write {
		if host == "" {
			fn(f.d)
			return false, nil
		}
		d, _, err := f.remote(host)
		if err != nil {
			return false, err
		}
		defer d.Discard()
		fn(d)
		return false, nil
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	d, v := f.d, f.view
	if host != "" {
		var err error
		if d, v, err = f.remote(host); err != nil {
			return false, err
		}
		defer d.Discard()
	} else if err := v.Sync(ctx); err != nil && !errors.Is(err, etcd.ErrUnavailable) {
		// Unavailable: the request runs, and its commit says so.
		f.log.Debug("write before this daemon caught up with the store", "err", err)
	}
	if o.RemoveTenant != "" {
		users, rev, err := f.tenantUsers(ctx, o.RemoveTenant, v.HostName())
		if err != nil {
			return false, err
		}
		if len(users) > 0 {
			return false, &api.Error{Status: 409, Code: daemon.CodeInUse.String(), Message: fmt.Sprintf(
				"--tenant: tenant %q still has VM %s on other hosts; detach them first (vifsec --host HOST vm detach --vm NAME)", o.RemoveTenant, strings.Join(users, ", "))}
		}
		v.RequireHostsUnchanged(rev)
		defer v.RequireHostsUnchanged(0)
	}
	v.TakeConflict()
	fn(d)
	return v.TakeConflict(), nil
}

// tenantUsers lists, as "VM (host H)", the VMs of every host but except
// that use the tenant, and the revision they were read at.
func (f *Fleet) tenantUsers(ctx context.Context, tn, except string) ([]string, int64, error) {
	byHost, rev, err := f.cfg.Cluster.HostRecords(ctx, store.KindVM)
	if err != nil {
		return nil, 0, err
	}
	var users []string
	for _, h := range slices.Sorted(maps.Keys(byHost)) {
		if h == except {
			continue
		}
		for _, r := range byHost[h] {
			var v struct {
				Tenant string `json:"tenant"`
			}
			if json.Unmarshal(r.Value, &v) == nil && v.Tenant == tn {
				users = append(users, fmt.Sprintf("%s (host %s)", r.Name, h))
			}
		}
	}
	return users, rev, nil
}

var _ api.Fleet = (*Fleet)(nil)

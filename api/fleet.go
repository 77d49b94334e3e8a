package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The fleet endpoints (a vifsecd with --store etcd://...): GET /v2/health,
// GET /v2/fleet, POST /v2/vms/NAME/move, and ?host=NAME on every endpoint.

// Health answers GET /v2/health.
type Health struct {
	Store string `json:"store"` // "etcd"
	Host  string `json:"host"`
	// State is "ok", or "degraded" while the store cannot be reached
	// with a quorum: the data path keeps its last state and changes are
	// refused.
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	LastContact time.Time `json:"last_contact,omitzero"`
	Error       string    `json:"error,omitempty"`
	// Revision is the store revision of the state the daemon runs.
	Revision int64 `json:"revision"`
	Tenants  int   `json:"tenants"`
	VMs      int   `json:"vms"`
	SAs      int   `json:"sas"`
	// Problems are stored records this host did not apply, and why.
	Problems []string `json:"problems"`
}

// FleetVM is one VM of a host in GET /v2/fleet.
type FleetVM struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	VIF    string `json:"vif"`
	SAs    int    `json:"sas"`
}

// FleetHost is one host in GET /v2/fleet; it is also what each daemon
// keeps in the store as its status.
type FleetHost struct {
	Host string `json:"host"`
	// State is ok or degraded (as the host last reported), or down: no
	// live vifsecd (its status key expired), or unknown: the store
	// cannot be read.
	State    string    `json:"state"`
	Version  string    `json:"version,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Revision int64     `json:"revision,omitempty"`
	Tenants  int       `json:"tenants"`
	SAs      int       `json:"sas"`
	VMs      []FleetVM `json:"vms"`
	// VMCount is the number of VMs; VMs may list fewer (a status keeps at
	// most 8192).
	VMCount  int      `json:"vm_count"`
	Problems []string `json:"problems,omitempty"`
}

// FleetStatus answers GET /v2/fleet.
type FleetStatus struct {
	Self  string `json:"self"`
	Store string `json:"store"` // ok | degraded (this daemon's view)
	// Error says why other hosts are unknown.
	Error string      `json:"error,omitempty"`
	Hosts []FleetHost `json:"hosts"`
}

// MoveRequest is POST /v2/vms/NAME/move (`vifsec vm move`).
type MoveRequest struct {
	ToHost string `json:"to_host"`
	// Dev and Netns, if set, are the VM's interface on the destination
	// (tap names differ between hosts); else they stay as they were.
	Dev   string `json:"dev,omitempty"`
	Netns string `json:"netns,omitempty"`
}

// Client side.

// ForHost returns a client whose requests carry ?host=name: they are
// about host name's objects (see NewFleetHandler). "" returns c.
func (c *Client) ForHost(name string) *Client {
	if name == "" {
		return c
	}
	base := c.hc.Transport
	c2 := *c
	c2.hc = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
		q := r.URL.Query()
		q.Set("host", name)
		r.URL.RawQuery = q.Encode()
		return base.RoundTrip(r)
	})}
	return &c2
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Health is GET /v2/health.
func (c *Client) Health(ctx context.Context) (out Health, err error) {
	return out, c.get(ctx, "/health", &out)
}

// FleetStatus is `vifsec fleet status`.
func (c *Client) FleetStatus(ctx context.Context) (out FleetStatus, err error) {
	return out, c.get(ctx, "/fleet", &out)
}

// MoveVM is `vifsec vm move --vm NAME --to-host HOST [--dev IFNAME] [--netns NS]`.
func (c *Client) MoveVM(ctx context.Context, vm string, r MoveRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/vms/"+url.PathEscape(vm)+"/move", r)
}

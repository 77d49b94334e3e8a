package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/tenant"
)

// With a fleet store (vifsecd --store etcd://...), the API adds:
//
//   - ?host=NAME on every endpoint: the request is about host NAME's
//     objects (its VMs, uplink, SAs, SPs, FDB, switch). The daemon that
//     receives it runs it on a temporary daemon built from NAME's desired
//     state in the store, with the same validation, and commits to the
//     store; NAME's vifsecd applies it through its watch. Fleet-wide
//     objects (tenants, IKE policies, certificates) are the same on every
//     host. Without ?host, or with the receiving daemon's own name, the
//     request is served as without a fleet.
//   - GET /v2/health: the store's health from this daemon's view.
//   - GET /v2/fleet: every host, its liveness, VMs and SA counts.
//   - POST /v2/vms/NAME/move {"to_host":"B"}: move a VM binding, with its
//     SAs and SPs, to host B (one transaction).

// Fleet is what vifsecd's fleet runtime offers the API.
type Fleet interface {
	Self() string
	Health() Health
	Status(ctx context.Context) (FleetStatus, error)
	// Exec runs fn on the daemon of host ("" is this host): this
	// daemon, or a temporary one over host's desired state. Writes are
	// serialised and first wait until this daemon runs the store's
	// latest state. retry says a commit lost a race with another writer
	// (nothing changed): the request may be run again.
	Exec(ctx context.Context, host string, o ExecOptions, fn func(*daemon.Daemon)) (retry bool, err error)
	// MoveVM moves VM vm of host from ("" is this host) to the host
	// and interface of req.
	MoveVM(ctx context.Context, from, vm string, req MoveRequest) (warnings []string, err error)
}

// ExecOptions qualify a Fleet.Exec.
type ExecOptions struct {
	Write bool
	// RemoveTenant names a tenant the request removes: it is refused
	// while a VM of any host uses it.
	RemoveTenant string
}

// NewFleetHandler returns the API of a fleet daemon: the /v2 API of
// NewHandler on each host's daemon (see Fleet.Exec), plus the fleet
// endpoints.
func NewFleetHandler(f Fleet, log *slog.Logger, version string) http.Handler {
	return newFleetHandler(f, log, version, retryBudget)
}

// newFleetHandler is NewFleetHandler with a retry budget of its own.
func newFleetHandler(f Fleet, log *slog.Logger, version string, budget time.Duration) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &fleetHandler{f: f, log: log, version: version, budget: budget, handlers: map[*daemon.Daemon]http.Handler{}}
	mux := http.NewServeMux()
	p := "/" + Version
	mux.HandleFunc("GET "+p+"/health", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f.Health()) })
	mux.HandleFunc("GET "+p+"/fleet", h.status)
	mux.HandleFunc("POST "+p+"/vms/{name}/move", h.move)
	mux.HandleFunc("/", h.forward)
	return h.logged(mux)
}

type fleetHandler struct {
	f       Fleet
	log     *slog.Logger
	version string
	budget  time.Duration // how long a request losing races is retried

	mu       sync.Mutex
	handlers map[*daemon.Daemon]http.Handler // the local daemon's, reused
}

func (h *fleetHandler) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		h.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "host", r.URL.Query().Get("host"), "status", sw.status, "duration", time.Since(start))
	})
}

// hostParam returns ?host, "" for this host; ok false (answered) if invalid.
func (h *fleetHandler) hostParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	host := r.URL.Query().Get("host")
	if host == "" || host == h.f.Self() {
		return "", true
	}
	if err := tenant.ValidName(host); err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "--host: " + err.Error()})
		return "", false
	}
	return host, true
}

func (h *fleetHandler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.f.Status(r.Context())
	if err != nil {
		failFleet(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *fleetHandler) move(w http.ResponseWriter, r *http.Request) {
	host, ok := h.hostParam(w, r)
	if !ok {
		return
	}
	var req MoveRequest
	if !decode(w, r, &req) {
		return
	}
	var p problems
	if p.required("--to-host", req.ToHost, "name the host the VM moves to") {
		if err := tenant.ValidName(req.ToHost); err != nil {
			p.add("--to-host", err)
		}
	}
	if err := p.err(); err != nil {
		fail(w, err)
		return
	}
	ws, err := h.f.MoveVM(r.Context(), host, r.PathValue("name"), req)
	if err != nil {
		failFleet(w, err)
		return
	}
	if ws == nil {
		ws = []string{}
	}
	writeJSON(w, http.StatusOK, Added{Warnings: ws})
}

// failFleet answers err: a daemon refusal as fail does, anything else
// (the store cannot be reached) as 503 unavailable.
func failFleet(w http.ResponseWriter, err error) {
	var de *daemon.Error
	var ae *Error
	switch {
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.As(err, &de):
		fail(w, err)
	default:
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()})
	}
}

// A request that loses a race to another writer is retried after a
// random pause that doubles each time (so that racing writers spread out
// instead of colliding again in lockstep, which starves the unluckiest of
// many), for as long as retryBudget allows.
const (
	retryBudget   = 10 * time.Second
	retryFirstGap = 2 * time.Millisecond
	retryMaxGap   = 200 * time.Millisecond
)

// forward serves every /v2 endpoint of NewHandler on the daemon of ?host.
func (h *fleetHandler) forward(w http.ResponseWriter, r *http.Request) {
	host, ok := h.hostParam(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "request body: " + err.Error()})
		return
	}
	o := ExecOptions{Write: r.Method != http.MethodGet && r.Method != http.MethodHead}
	if name, ok := strings.CutPrefix(r.URL.Path, "/"+Version+"/tenants/"); ok && r.Method == http.MethodDelete && !strings.Contains(name, "/") {
		o.RemoveTenant, _ = url.PathUnescape(name)
	}
	deadline := time.Now().Add(h.budget)
	gap := retryFirstGap
	attempts := 0
	for {
		attempts++
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		retry, err := h.f.Exec(r.Context(), host, o, func(d *daemon.Daemon) {
			r2 := r.Clone(r.Context())
			r2.Body = io.NopCloser(bytes.NewReader(body))
			h.handler(d, host == "").ServeHTTP(rec, r2)
		})
		if err != nil {
			failFleet(w, err)
			return
		}
		if !retry {
			rec.copyTo(w)
			return
		}
		pause := gap/2 + rand.N(gap)
		if time.Now().Add(pause).After(deadline) {
			break
		}
		select {
		case <-r.Context().Done():
			failFleet(w, r.Context().Err())
			return
		case <-time.After(pause):
		}
		gap = min(2*gap, retryMaxGap)
	}
	writeError(w, &Error{Status: http.StatusConflict, Code: "conflict",
		Message: fmt.Sprintf("the desired state kept changing under this request (other writers); nothing changed after %d attempts in %v, try again", attempts, h.budget)})
}

// handler returns the API on d: cached for this host's daemon, made
// afresh for a temporary one.
func (h *fleetHandler) handler(d *daemon.Daemon, local bool) http.Handler {
	if !local {
		return NewHandler(d, h.log, h.version)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hh := h.handlers[d]
	if hh == nil {
		hh = NewHandler(d, h.log, h.version)
		h.handlers = map[*daemon.Daemon]http.Handler{d: hh}
	}
	return hh
}

// bufferedResponse holds an answer until it is known not to be retried.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.status = code }

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

// WithoutFleet wraps the API of a daemon on the embedded store: a request
// with ?host= is refused (400) rather than silently answered about this
// host, and the fleet endpoints say that there is no fleet.
func WithoutFleet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := "/" + Version
		switch {
		case r.URL.Query().Get("host") != "":
			writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid",
				Message: "--host: this vifsecd runs on the embedded store and has no other hosts (a fleet needs vifsecd --store etcd://...)"})
		case r.URL.Path == p+"/fleet" || r.URL.Path == p+"/health" ||
			r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, p+"/vms/") && strings.HasSuffix(r.URL.Path, "/move") && strings.Count(r.URL.Path, "/") == 4:
			writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found",
				Message: "not a fleet host: this vifsecd runs on the embedded store (start it with --store etcd://... for fleet status and moves)"})
		default:
			h.ServeHTTP(w, r)
		}
	})
}

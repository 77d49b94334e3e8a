package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/vifsec/vifsec/internal/daemon"
)

// health answers /healthz and /readyz on the metrics listener.
//
// /healthz (liveness) is 200 while the daemon serves: a supervisor that
// gets no answer restarts it. /readyz is 200 only when the daemon can do
// its job: the desired-state store is open and in contact (the fleet's etcd
// reachable), and the uplink is configured and attached; otherwise 503
// with one line per check saying what is missing.
type health struct {
	// store reports "" when the store is usable, else why not.
	store func() string
	// d reports the uplink: configured (d.Uplink) and attached
	// (d.UplinkState, from the data path).
	d *daemon.Daemon
}

func (h *health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (h *health) readyz(w http.ResponseWriter, _ *http.Request) {
	var lines []string
	ok := true
	if p := h.store(); p != "" {
		ok = false
		lines = append(lines, "store: "+p)
	} else {
		lines = append(lines, "store: ok")
	}
	u, configured := h.d.Uplink()
	st := h.d.UplinkState()
	switch {
	case !configured:
		ok = false
		lines = append(lines, "uplink: none configured (vifsec uplink set --dev IFNAME)")
	case !st.Known:
		ok = false
		lines = append(lines, "uplink: "+u.Dev+": data path not started")
	case !st.Up:
		ok = false
		lines = append(lines, "uplink: "+u.Dev+": down: "+st.Reason)
	default:
		lines = append(lines, "uplink: "+u.Dev+": up")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

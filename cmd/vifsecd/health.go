package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
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
	// uplink reports whether an uplink is configured and "" when it is
	// attached, else why not; set once the data path runs.
	uplink atomic.Pointer[func() (bool, string)]
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
	switch f := h.uplink.Load(); {
	case f == nil:
		ok = false
		lines = append(lines, "uplink: data path not started")
	default:
		configured, problem := (*f)()
		switch {
		case !configured:
			ok = false
			lines = append(lines, "uplink: none configured (vifsec uplink set --dev IFNAME)")
		case problem != "":
			ok = false
			lines = append(lines, "uplink: not attached: "+problem)
		default:
			lines = append(lines, "uplink: attached")
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

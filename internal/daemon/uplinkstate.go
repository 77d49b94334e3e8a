package daemon

import "fmt"

// UplinkState is whether the data path has the configured uplink's port
// open. A restored uplink whose device is missing (the NIC is not there
// yet, or went away) is kept and reported down until it appears.
type UplinkState struct {
	// Known: a data path reports (false without one: tests, tools).
	Known bool
	// Up: the uplink's port is open and frames flow.
	Up bool
	// Reason is why the uplink is down ("" when up or unknown).
	Reason string
}

// linkHooks are what the data path installs: SetLinkCheck, SetUplinkState.
type linkHooks struct {
	check func(dev, netns string) error
	state func() (up bool, reason string)
}

// SetLinkCheck installs the check SetUplink makes that the interface
// exists (on this host, in its namespace); its error names the flag at
// fault. Without one, SetUplink checks only the names' syntax.
func (d *Daemon) SetLinkCheck(f func(dev, netns string) error) {
	d.setLinkHooks(func(h *linkHooks) { h.check = f })
}

// SetUplinkState installs the data path's report of the uplink's port;
// UplinkState then answers from it.
func (d *Daemon) SetUplinkState(f func() (up bool, reason string)) {
	d.setLinkHooks(func(h *linkHooks) { h.state = f })
}

func (d *Daemon) setLinkHooks(set func(*linkHooks)) {
	d.linksMu.Lock()
	defer d.linksMu.Unlock()
	h := linkHooks{}
	if p := d.links.Load(); p != nil {
		h = *p
	}
	set(&h)
	d.links.Store(&h)
}

// UplinkState reports the uplink's port: the zero UplinkState when no
// uplink is set or no data path reports. Equivalent to the State of
// `vifsec uplink show`.
func (d *Daemon) UplinkState() UplinkState {
	if _, ok := d.Uplink(); !ok {
		return UplinkState{}
	}
	h := d.links.Load()
	if h == nil || h.state == nil {
		return UplinkState{}
	}
	up, reason := h.state()
	if up {
		reason = ""
	}
	return UplinkState{Known: true, Up: up, Reason: reason}
}

// checkLink refuses an uplink whose interface does not exist here.
func (d *Daemon) checkLink(u *Uplink) error {
	h := d.links.Load()
	if h == nil || h.check == nil {
		return nil
	}
	if err := h.check(u.Dev, u.Netns); err != nil {
		return errf(CodeInvalid, "%v; the uplink is unchanged", err)
	}
	return nil
}

// String is "up", "down" or "down: REASON"; "" when unknown.
func (s UplinkState) String() string {
	switch {
	case !s.Known:
		return ""
	case s.Up:
		return "up"
	case s.Reason == "":
		return "down"
	}
	return fmt.Sprintf("down: %s", s.Reason)
}

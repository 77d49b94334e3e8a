package ikeconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Lifetimes and dead peer detection of an IKE policy (ext: --ike-lifetime,
// --esp-lifetime, --dpd-interval, --dpd-action), as strongSwan's
// rekey_time, life_time, dpd_delay and dpd_action.

const (
	// DefaultIKELifetime is when an IKE SA is rekeyed without
	// --ike-lifetime (jittered to 85-95% of it, as every lifetime).
	DefaultIKELifetime = 4 * time.Hour
	// DefaultESPLifetime is a Child SA's hard lifetime without
	// --esp-lifetime; it is rekeyed at 85-95% of it.
	DefaultESPLifetime = time.Hour
	// MinLifetime and MaxLifetime bound --ike-lifetime and
	// --esp-lifetime. The minimum leaves a rekey time for the exchange.
	MinLifetime = 10 * time.Second
	MaxLifetime = 7 * 24 * time.Hour
	// MinDPDInterval and MaxDPDInterval bound --dpd-interval (0: off).
	MinDPDInterval = time.Second
	MaxDPDInterval = 24 * time.Hour
)

// DPDAction is what IKE does when a policy's peer is found dead: a
// liveness check (--dpd-interval) or any other exchange of an established
// IKE SA went unanswered (after the retransmissions). Its zero value is
// not invalid but "not set": the default depends on --remote-address.
type DPDAction uint8

const (
	// DPDDefault: restart with --remote-address, else clear.
	DPDDefault DPDAction = iota
	// DPDClear removes the SAs and leaves the policy waiting for the peer
	// to initiate (it initiates again only once the policy is modified or
	// the daemon restarts).
	DPDClear
	// DPDRestart removes the SAs and initiates again at once (needs
	// --remote-address).
	DPDRestart
)

func (a DPDAction) String() string {
	switch a {
	case DPDDefault:
		return ""
	case DPDClear:
		return "clear"
	case DPDRestart:
		return "restart"
	}
	return fmt.Sprintf("DPDAction(%d)", uint8(a))
}

// ParseEncapsulation parses an IKE policy's --encapsulation: auto (or
// "": ESP in UDP only where NAT detection finds a NAT) or udp (always,
// as strongSwan's encap=yes); it returns ForceEncap.
func ParseEncapsulation(s string) (force bool, err error) {
	switch s {
	case "", "auto":
		return false, nil
	case "udp":
		return true, nil
	}
	return false, fmt.Errorf("%q is not an encapsulation; use auto (ESP in UDP only when a NAT is detected, RFC 7296 §2.23) or udp (always ESP in UDP to port 4500, as strongSwan's encap=yes)", s)
}

// EncapsulationString is --encapsulation for ForceEncap: auto or udp.
func EncapsulationString(force bool) string {
	if force {
		return "udp"
	}
	return "auto"
}

// ParseDPDAction parses --dpd-action: clear or restart; "" is the
// default.
func ParseDPDAction(s string) (DPDAction, error) {
	switch strings.ToLower(s) {
	case "":
		return DPDDefault, nil
	case "clear":
		return DPDClear, nil
	case "restart":
		return DPDRestart, nil
	}
	return DPDDefault, fmt.Errorf("%q is not an action; use clear (remove the SAs, wait for the peer) or restart (remove them and initiate again; needs --remote-address)", s)
}

// ParseTimerValue parses a lifetime or interval: a Go duration (30s, 5m,
// 1h30m) or a whole number of seconds. "off" and "0" are 0 (for
// --dpd-interval; lifetimes refuse 0 in Validate).
func ParseTimerValue(s string) (time.Duration, error) {
	const rule = "give a duration such as 30s, 5m or 1h (or a whole number of seconds)"
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration; %s", s, rule)
	}
	return d, nil
}

// FormatTimer writes d as an operator would: 4h, 1h30m, 30s, 1.5s; 0 is
// "off".
func FormatTimer(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Lifetimes returns the policy's IKE and ESP lifetimes, defaults filled
// in.
func (p *Policy) Lifetimes() (ikeSA, esp time.Duration) {
	ikeSA, esp = p.IKELifetime, p.ESPLifetime
	if ikeSA == 0 {
		ikeSA = DefaultIKELifetime
	}
	if esp == 0 {
		esp = DefaultESPLifetime
	}
	return ikeSA, esp
}

// EffectiveDPDAction is the action IKE takes for the policy: its
// --dpd-action, else restart when it has --remote-address, else clear.
func (p *Policy) EffectiveDPDAction() DPDAction {
	switch {
	case p.DPDAction != DPDDefault:
		return p.DPDAction
	case p.RemoteAddress.IsValid():
		return DPDRestart
	}
	return DPDClear
}

// checkTimers appends the problems of the lifetimes and DPD settings.
func (p *Policy) checkTimers(errs *[]error) {
	for _, x := range [...]struct {
		flag string
		d    time.Duration
		def  time.Duration
	}{{"--ike-lifetime", p.IKELifetime, DefaultIKELifetime}, {"--esp-lifetime", p.ESPLifetime, DefaultESPLifetime}} {
		if x.d != 0 && (x.d < MinLifetime || x.d > MaxLifetime) {
			*errs = append(*errs, fmt.Errorf("%s %s: out of range; give a duration from %s to %s (default %s), e.g. 8h",
				x.flag, FormatTimer(x.d), FormatTimer(MinLifetime), FormatTimer(MaxLifetime), FormatTimer(x.def)))
		}
	}
	if d := p.DPDInterval; d < 0 || (d != 0 && (d < MinDPDInterval || d > MaxDPDInterval)) {
		*errs = append(*errs, fmt.Errorf("--dpd-interval %s: out of range; give a duration from %s to %s, e.g. 30s, or off (the default)",
			FormatTimer(d), FormatTimer(MinDPDInterval), FormatTimer(MaxDPDInterval)))
	}
	switch p.DPDAction {
	case DPDDefault, DPDClear:
	case DPDRestart:
		if !p.RemoteAddress.IsValid() {
			*errs = append(*errs, errors.New("--dpd-action restart needs --remote-address: a policy without one only responds and cannot initiate again; use clear, or leave --dpd-action out"))
		}
	default:
		*errs = append(*errs, fmt.Errorf("--dpd-action: %v is not an action; use clear or restart", p.DPDAction))
	}
}

package lab

import (
	"context"
	"net/netip"
	"time"
)

// CreateFleetIKEPolicy creates, through daemon d, the IKE policy name of
// vm's tenant that protects vm's IPv6 traffic with peer in transport
// mode, authenticated by psk (given on stdin, as an operator types it).
// With initiate the policy has --remote-address (peer's address) and
// initiates; without it only responds. Policies are fleet-wide: d may be
// any host's daemon, and the policy runs on the host vm is attached to.
func CreateFleetIKEPolicy(ctx context.Context, d *Daemon, name string, vm, peer *VM, psk string, initiate bool) (string, error) {
	args := []string{"policy", "create", "--tenant", vm.Tenant, "--name", name, "--vm", vm.Name,
		"--local-ip-subnets", netip.PrefixFrom(vm.IP6, 128).String(),
		"--remote-ip-subnets", netip.PrefixFrom(peer.IP6, 128).String(),
		"--mode", "transport", "--auth-method", "PSK"}
	if initiate {
		args = append(args, "--remote-address", peer.IP6.String())
	}
	return d.CLIStdin(ctx, psk+"\n", args...)
}

// Outage is the longest time without an echo around an event at from:
// between the last echo at or before from and the echo after it, or
// between two later echoes, whichever is longest. Last and First bound
// it; First is zero if no echo came after Last (the flow never came
// back while the probe ran), and then Outage reaches to the probe's end.
type Outage struct {
	Last, First time.Time
}

// Duration is First - Last, or, with no First, the time from Last to end.
func (o Outage) Duration(end time.Time) time.Duration {
	if o.First.IsZero() {
		return end.Sub(o.Last)
	}
	return o.First.Sub(o.Last)
}

// OutageAround returns the longest gap between consecutive echoes from the
// last echo at or before from on (from itself if no echo came before it).
// Call it after Stop, or while the probe runs for the gaps so far.
func (p *Probe) OutageAround(from time.Time) Outage {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := from
	i := 0
	for ; i < len(p.replies) && !p.replies[i].After(from); i++ {
		start = p.replies[i]
	}
	o := Outage{Last: start}
	prev := start
	var longest time.Duration
	for ; i < len(p.replies); i++ {
		if g := p.replies[i].Sub(prev); g > longest {
			longest, o = g, Outage{Last: prev, First: p.replies[i]}
		}
		prev = p.replies[i]
	}
	if longest == 0 {
		return Outage{Last: start}
	}
	return o
}

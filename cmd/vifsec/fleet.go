package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/vifsec/vifsec/api"
)

// Fleet verbs (ext), for a vifsecd on a fleet store (--store etcd://...).
// The global --host NAME (args.go) makes any verb about another host's
// objects.

func fleetVerbs() []*verb {
	return []*verb{
		{words: []string{"fleet", "status"}, usage: "fleet status   (with a fleet store: hosts, liveness, VMs, SA counts)", run: runFleetStatus},
		{words: []string{"vm", "move"}, flags: []flagDef{{name: "vm", kind: flagValue, required: true}, {name: "to-host", kind: flagValue, required: true},
			{name: "dev", kind: flagValue}, {name: "netns", kind: flagValue}},
			usage: "vm move --vm NAME --to-host HOST [--dev IFNAME] [--netns NS]   (with a fleet store: the VM binding, its SAs and SPs move to HOST; --dev/--netns: its interface there)", run: runVMMove},
	}
}

func runFleetStatus(c *cli, in *invocation) int {
	st, err := c.c.FleetStatus(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(st)
		return exitOK
	}
	if st.Error != "" {
		fmt.Fprintln(c.stderr, "vifsec: warning: only this host is known:", st.Error)
	}
	var hosts, vms, probs [][]string
	for _, h := range st.Hosts {
		name := h.Host
		if h.Host == st.Self {
			name += " (self)"
		}
		since := "-"
		if !h.Since.IsZero() {
			since = h.Since.Local().Format(time.DateTime)
		}
		vmCount := "-"
		if h.State != "down" && h.State != "unknown" {
			vmCount = fmt.Sprint(h.VMCount)
		}
		hosts = append(hosts, []string{name, h.State, orDash(h.Version), vmCount, fmt.Sprint(h.SAs), since})
		for _, v := range h.VMs {
			vms = append(vms, []string{h.Host, v.Name, v.Tenant, orDash(v.VIF), fmt.Sprint(v.SAs)})
		}
		if len(h.VMs) < h.VMCount {
			vms = append(vms, []string{h.Host, fmt.Sprintf("(%d more)", h.VMCount-len(h.VMs)), "", "", ""})
		}
		for _, p := range h.Problems {
			probs = append(probs, []string{h.Host, p})
		}
	}
	c.table([]string{"Host", "State", "Version", "VMs", "SAs", "Since"}, hosts)
	if len(vms) > 0 {
		fmt.Fprintln(c.stdout)
		c.table([]string{"Host", "VM", "Tenant", "VIF", "SAs"}, vms)
	}
	if len(probs) > 0 {
		fmt.Fprintln(c.stdout)
		c.table([]string{"Host", "Stored record not applied"}, probs)
	}
	return exitOK
}

func runVMMove(c *cli, in *invocation) int {
	a, err := c.c.MoveVM(c.ctx, in.get("vm"), api.MoveRequest{ToHost: in.get("to-host"), Dev: in.get("dev"), Netns: in.get("netns")})
	if err == nil && c.format != "json" {
		fmt.Fprintf(c.stdout, "VM %s moved to host %s\n", in.get("vm"), strings.TrimSpace(in.get("to-host")))
	}
	return c.added(a, err)
}

package main

import (
	"io"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/manpage"
)

// manPage is vifsecd(8), its OPTIONS generated from the flag set that
// parses them.
func manPage() *manpage.Page {
	var o options
	fs := flagSet(&o, io.Discard)
	return &manpage.Page{
		Name: "vifsecd", Section: 8, Version: buildinfo.Version,
		Summary: "IPsec for virtual machines, done by the hypervisor (daemon)",
		Synopsis: []string{
			"vifsecd [--state DIR] [--socket PATH] [--metrics ADDR|off] [--log-level LEVEL] [--log-format text|json] ...",
			"vifsecd --version",
		},
		Sections: []manpage.Section{
			{Title: "Description", Text: []string{
				"vifsecd sits on each virtual machine's interface (veth, macvlan, tap, SR-IOV VF representor) and does IPsec for the guest: frames the VM sends are classified against its tenant's outbound security policies and leave on the uplink clear, as ESP, or not at all; ESP from the uplink is looked up by (vlan, mac, SPI), decrypted, checked against the inbound policies and delivered clear. It runs IKEv2 on a VM's behalf where an IKE policy says so, and carries tenants over a VXLAN underlay.",
				"It restores tenants, VMs, the uplink, SAs, SPs and IKE policies from --state (or from an etcd fleet store with --store), serves the control API that vifsec(8) uses on the unix socket --socket (mode 0600), and Prometheus metrics, /healthz and /readyz on --metrics.",
			}},
			{Title: "Options", Items: manpage.FlagItems(fs, "man")},
			{Title: "Signals", Items: []manpage.Item{
				{Tag: "SIGTERM, SIGINT", Text: "stop serving, record every SA's exact sequence number, flush state and exit 0."},
				{Tag: "SIGHUP", Text: "re-read the desired state and reconcile the data path with it (systemctl reload vifsecd)."},
			}},
			{Title: "Files", Items: []manpage.Item{
				{Tag: "/var/lib/vifsec/state.db", Text: "the embedded store (default --state)."},
				{Tag: api.DefaultSocket, Text: "the control API socket (default --socket)."},
				{Tag: "/run/vifsec/seq-*.anchor", Text: "beside the socket: binds the store's sequence-number reservations to this boot. It survives a crash (SAs continue above their reservation) but not a reboot (only cleanly stopped SAs continue); a state directory restored from elsewhere disagrees with it, and its SAs refuse to send until re-keyed."},
				{Tag: "/etc/default/vifsecd", Text: "VIFSECD_OPTS, extra options the systemd unit passes."},
			}},
			{Title: "Exit status", Text: []string{"0 after a clean stop; 1 when a flag's value is refused (the message names the flag and what it accepts) or when it cannot start or serve (the log says why); 2 on a usage error (a flag it does not know, a flag without its value, an argument)."}},
			{Title: "See also", Text: []string{"vifsec(8), vifsec-hook(8)"}},
		},
	}
}

package main

import (
	"io"

	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/manpage"
)

// manPage is vifsec-hook(8), its options generated from the flag sets
// that parse them.
func manPage() *manpage.Page {
	var hf hookFlags
	var inf installFlags
	return &manpage.Page{
		Name: "vifsec-hook", Section: 8, Version: buildinfo.Version,
		Summary: "libvirt qemu hook that attaches VMs to vifsecd",
		Synopsis: []string{
			"vifsec-hook [--socket PATH] [--timeout 5s] DOMAIN OPERATION SUBOP EXTRA < domain.xml",
			"vifsec-hook install [--hooks-dir /etc/libvirt/hooks] [--name vifsec] [--socket PATH] [--bin PATH] [--force] [--reload]",
			"vifsec-hook uninstall [--hooks-dir /etc/libvirt/hooks] [--name vifsec] [--force] [--reload]",
			"vifsec-hook --version",
		},
		Sections: []manpage.Section{
			{Title: "Description", Text: []string{
				"libvirt runs vifsec-hook at every QEMU domain event with the domain XML on stdin. For domains whose XML carries vifsec's metadata (<vifsec:vm> and <vifsec:interface> in the domain's <metadata>), it asks vifsecd(8) to attach the domain's interfaces when the domain starts and to detach them when it stops, so the VM is protected from the moment its interface exists. Every other domain is left alone at once.",
				"With fail=\"closed\" in the metadata, a domain whose interfaces vifsecd cannot protect (daemon down, unknown tenant, missing IKE policy named by policy=) does not start: the hook exits 1 at prepare and libvirt reports its message. It never calls libvirt back and prints nothing on stdout.",
				"install writes HOOKS-DIR/qemu.d/NAME, a small script that execs this program (the installed path when built by make install) with --socket; an existing hooks/qemu keeps running. libvirt reads hooks when it starts or on SIGHUP (--reload).",
			}},
			{Title: "Hook options", Items: manpage.FlagItems(hf.define(io.Discard))},
			{Title: "Install and uninstall options", Items: manpage.FlagItems(inf.define("install", io.Discard))},
			{Title: "Exit status", Text: []string{"0, or 1 when it refuses a domain's start (fail=\"closed\") or cannot install, or 2 on a usage error."}},
			{Title: "See also", Text: []string{"vifsecd(8), vifsec(8), virsh(1)"}},
		},
	}
}

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/libvirt"
	"github.com/vifsec/vifsec/vif"
)

// libvirtInterval is how often the VMs of libvirt domains are reconciled
// (and the first pass runs at start-up). The hook does the work as domains
// start and stop; this pass catches what it missed while vifsecd was down.
const libvirtInterval = 30 * time.Second

// runLibvirt reconciles the VMs of libvirt domains with the domains libvirt
// runs until ctx ends (--libvirt): "off" does nothing; "auto" tries
// libvirt's read-only sockets (libvirt.DefaultSockets); anything else is a
// socket path. libvirt being absent is logged once and retried; it never
// holds up the daemon.
func runLibvirt(ctx context.Context, d *daemon.Daemon, log *slog.Logger, spec string) {
	if spec == "off" {
		return
	}
	sockets := libvirt.DefaultSockets
	if spec != "auto" && spec != "" {
		sockets = []string{spec}
	}
	r := &libvirt.Reconciler{
		Host: d,
		List: func(ctx context.Context) ([]libvirt.LiveDomain, error) {
			doms, _, err := libvirt.ListLive(ctx, sockets, libvirt.DefaultURI)
			return doms, err
		},
		DevExists: func(dev, netns string) bool {
			_, err := vif.Describe(dev, netns)
			return err == nil
		},
		Log: log.With("part", "libvirt"),
	}
	r.Run(ctx, libvirtInterval)
}

package vif

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The guard filter: cls_bpf in direct-action mode with a program that
// returns TC_ACT_SHOT, at the lowest priority number tc allows, so that
// no other classic filter on the ingress runs before it. cls_bpf rather
// than matchall with a gact drop action: every kernel with clsact has
// cls_bpf, while matchall and gact are often left out (the test kernels
// have neither).
const (
	guardName = "vifsec_guard" // the filter's and the program's name
	guardPref = 1
	// guardHandle is the filter's handle within its priority.
	guardHandle = 1
)

// InstallGuard puts the guard on interface name in network namespace
// nsName ("" = the daemon's) and checks that it is in force, first on
// the interface's ingress. It adds a clsact qdisc if the interface has
// neither clsact nor ingress, and replaces a guard already there (left by
// a vifsec that stopped): it may be called again at any time. It returns
// the interface's index, for RemoveGuard.
//
// Equivalent to: `tc qdisc add dev NAME clsact; tc filter replace dev
// NAME ingress pref 1 handle 1 bpf direct-action obj DROP`.
func InstallGuard(name, nsName string) (int, error) {
	var index int
	err := withNetlink(nsName, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		index = l.Attrs().Index
		if err := ensureClsact(h, l); err != nil {
			return err
		}
		fd, err := loadVerdictProg(guardName, int32(netlink.TC_ACT_SHOT))
		if err != nil {
			return err
		}
		defer unix.Close(fd) // the filter holds the program
		f := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: index, Parent: netlink.HANDLE_MIN_INGRESS,
				Handle: guardHandle, Priority: guardPref, Protocol: unix.ETH_P_ALL},
			Fd: fd, Name: guardName, DirectAction: true,
		}
		if err := h.FilterReplace(f); err != nil {
			return fmt.Errorf("add the drop filter (tc filter replace dev %s ingress pref %d): %w%s", name, guardPref, err, prefTakenHint(h, l))
		}
		return checkGuard(h, l)
	})
	if err != nil {
		return 0, guardError("install", name, nsName, err)
	}
	return index, nil
}

// CheckGuard reports an error unless the guard is in force on interface
// name in nsName: present, first on its ingress, dropping everything. It
// returns the interface's index.
func CheckGuard(name, nsName string) (int, error) {
	var index int
	err := withNetlink(nsName, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		index = l.Attrs().Index
		return checkGuard(h, l)
	})
	if err != nil {
		return 0, guardError("check", name, nsName, err)
	}
	return index, nil
}

// RemoveGuard takes the guard off interface name in nsName, if that is
// still the interface with index (a new one of the same name is left
// alone), and the clsact qdisc with it when nothing else is attached
// there. An interface or namespace that is gone is not an error.
//
// Equivalent to: `tc filter del dev NAME ingress pref 1 handle 1 bpf`.
func RemoveGuard(name, nsName string, index int) error {
	err := withNetlink(nsName, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().Index != index {
			return nil
		}
		g, err := findGuard(h, l)
		if err != nil || g == nil {
			return err
		}
		if err := h.FilterDel(g); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return dropEmptyClsact(h, l)
	})
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return guardError("remove", name, nsName, err)
	}
	return nil
}

func guardError(op, name, nsName string, err error) error {
	where := ""
	if nsName != "" {
		where = " --netns " + nsName
	}
	return fmt.Errorf("%s guard on --dev %s%s: %w", op, name, where, err)
}

// withNetlink runs fn with an rtnetlink handle in namespace nsName.
func withNetlink(nsName string, fn func(*netlink.Handle) error) error {
	ns := netns.None()
	if nsName != "" {
		n, err := netns.GetFromName(nsName)
		if err != nil {
			return fmt.Errorf("--netns %s: %w", nsName, err)
		}
		defer n.Close()
		ns = n
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	return fn(h)
}

// ensureClsact adds a clsact qdisc unless l has clsact or ingress (both
// take ingress filters at ffff:fff2; an ingress qdisc is someone else's,
// libvirt's inbound bandwidth for one, and stays).
func ensureClsact(h *netlink.Handle, l netlink.Link) error {
	qs, err := h.QdiscList(l)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			return nil
		}
	}
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add a clsact qdisc (tc qdisc add dev %s clsact): %w", l.Attrs().Name, err)
	}
	return nil
}

// findGuard returns the guard filter on l's ingress, or nil.
func findGuard(h *netlink.Handle, l netlink.Link) (*netlink.BpfFilter, error) {
	fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return nil, fmt.Errorf("list ingress filters: %w", err)
	}
	for _, f := range fs {
		if b, ok := f.(*netlink.BpfFilter); ok && b.Priority == guardPref && b.Handle == guardHandle && b.Name == guardName {
			return b, nil
		}
	}
	return nil, nil
}

// checkGuard fails unless l's ingress has the guard, in direct-action
// mode, for every protocol, and no other filter at its priority (the
// lowest number there is).
func checkGuard(h *netlink.Handle, l netlink.Link) error {
	fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list ingress filters: %w", err)
	}
	var g *netlink.BpfFilter
	for _, f := range fs {
		a := f.Attrs()
		if b, ok := f.(*netlink.BpfFilter); ok && a.Priority == guardPref && a.Handle == guardHandle && b.Name == guardName {
			g = b
			continue
		}
		if a.Priority <= guardPref {
			return fmt.Errorf("a %s filter at pref %d may run before the drop filter", f.Type(), a.Priority)
		}
	}
	switch {
	case g == nil:
		return errors.New("the drop filter is missing from the ingress")
	case !g.DirectAction || g.Protocol != unix.ETH_P_ALL:
		return fmt.Errorf("the drop filter is not direct-action for every protocol (direct-action %t, protocol %#04x)", g.DirectAction, g.Protocol)
	}
	return nil
}

// prefTakenHint names what holds the guard's priority, when something
// does: the filter cannot go there and attach fails.
func prefTakenHint(h *netlink.Handle, l netlink.Link) string {
	fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return ""
	}
	for _, f := range fs {
		if a := f.Attrs(); a.Priority == guardPref {
			return fmt.Sprintf(" (pref %d holds a %s filter that is not vifsec's; vifsec's drop filter must run first)", guardPref, f.Type())
		}
	}
	return ""
}

// dropEmptyClsact deletes l's clsact qdisc when no filter is left on its
// ingress or egress.
func dropEmptyClsact(h *netlink.Handle, l netlink.Link) error {
	qs, err := h.QdiscList(l)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Attrs().Parent != netlink.HANDLE_CLSACT || q.Type() != "clsact" {
			continue
		}
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			fs, err := h.FilterList(l, parent)
			if err != nil || len(fs) > 0 {
				return err
			}
		}
		if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return nil
}

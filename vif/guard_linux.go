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
// both the interface's ingress and its egress. It replaces a guard
// already there (left by a vifsec that stopped): it may be called again
// at any time. It returns the interface's index, for RemoveGuard.
//
// The ingress filter goes on the clsact qdisc, added if the interface has
// neither clsact nor ingress, or on the ingress qdisc found there. The
// egress filter goes on the clsact egress; where an ingress qdisc keeps
// clsact off (libvirt's outbound <bandwidth>), it goes first on the root
// qdisc if that is classful (libvirt's inbound <bandwidth> puts an htb
// there), else on a root htb qdisc InstallGuard adds in place of the
// kernel's default one.
//
// Equivalent to: `tc qdisc add dev NAME clsact; tc filter replace dev
// NAME ingress pref 1 handle 1 bpf direct-action obj DROP; tc filter
// replace dev NAME egress pref 1 handle 1 bpf direct-action obj DROP`.
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
		egress, err := ensureEgress(h, l)
		if err != nil {
			return err
		}
		fd, err := loadVerdictProg(guardName, int32(netlink.TC_ACT_SHOT))
		if err != nil {
			return err
		}
		defer unix.Close(fd) // the filters hold the program
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, egress} {
			f := &netlink.BpfFilter{
				FilterAttrs: netlink.FilterAttrs{LinkIndex: index, Parent: parent,
					Handle: guardHandle, Priority: guardPref, Protocol: unix.ETH_P_ALL},
				Fd: fd, Name: guardName, DirectAction: true,
			}
			if err := h.FilterReplace(f); err != nil {
				return fmt.Errorf("add the drop filter (tc filter replace dev %s %s pref %d): %w%s",
					name, hookName(parent), guardPref, err, prefTakenHint(h, l, parent))
			}
		}
		return checkGuard(h, l)
	})
	if err != nil {
		return 0, guardError("install", name, nsName, err)
	}
	return index, nil
}

// CheckGuard reports an error unless the guard is in force on interface
// name in nsName: present, first on its ingress and its egress, dropping
// everything. It returns the interface's index.
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
// alone), and the qdiscs it added with it (clsact, the root htb) when
// nothing else is attached there. An interface or namespace that is gone
// is not an error.
//
// Equivalent to: `tc filter del dev NAME ingress pref 1 handle 1 bpf;
// tc filter del dev NAME egress pref 1 handle 1 bpf`.
func RemoveGuard(name, nsName string, index int) error {
	err := withNetlink(nsName, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().Index != index {
			return nil
		}
		parents := []uint32{netlink.HANDLE_MIN_INGRESS}
		if egress, err := egressParent(h, l); err != nil {
			return err
		} else if egress != 0 {
			parents = append(parents, egress)
		}
		for _, parent := range parents {
			g, err := findGuard(h, l, parent)
			if err != nil {
				return err
			}
			if g == nil {
				continue
			}
			if err := h.FilterDel(g); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
		if err := dropOwnRoot(h, l); err != nil {
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

// guardRoot is the handle of the root htb qdisc the guard adds where
// the egress filter can go neither on clsact nor on a classful root
// qdisc: RemoveGuard knows it as the guard's own by this handle.
var guardRoot = netlink.MakeHandle(0x5653, 0)

// classful are the root qdiscs that classify with filters, where a
// direct-action filter returning TC_ACT_SHOT drops the frame before it
// is queued.
var classful = map[string]bool{"htb": true, "prio": true, "hfsc": true, "drr": true, "ets": true, "qfq": true, "cbq": true, "multiq": true}

// egressParent returns where l's egress filters are classified first:
// the clsact egress when l has clsact, else its root qdisc's handle
// when that is classful, else 0 (nowhere a filter can drop).
func egressParent(h *netlink.Handle, l netlink.Link) (uint32, error) {
	qs, err := h.QdiscList(l)
	if err != nil {
		return 0, fmt.Errorf("list qdiscs: %w", err)
	}
	var root uint32
	for _, q := range qs {
		a := q.Attrs()
		switch {
		case a.Parent == netlink.HANDLE_CLSACT && q.Type() == "clsact":
			return netlink.HANDLE_MIN_EGRESS, nil
		case a.Parent == netlink.HANDLE_ROOT && classful[q.Type()] && a.Handle != 0:
			root = a.Handle
		}
	}
	return root, nil
}

// ensureEgress returns where the egress drop filter goes on l (see
// egressParent), first adding the guard's root htb qdisc when l has
// neither clsact nor a classful root qdisc. That replaces the kernel's
// default root qdisc (noqueue, pfifo_fast, mq, fq_codel), through which
// nothing vifsec sends passes: its packet sockets bypass the qdiscs.
func ensureEgress(h *netlink.Handle, l netlink.Link) (uint32, error) {
	parent, err := egressParent(h, l)
	if err != nil || parent != 0 {
		return parent, err
	}
	// htb with no class sends what no filter classifies to its direct
	// queue; the drop filter classifies everything.
	q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: guardRoot, Parent: netlink.HANDLE_ROOT})
	if err := h.QdiscReplace(q); err != nil {
		return 0, fmt.Errorf("the ingress qdisc keeps clsact off, and adding a root htb qdisc for the egress drop filter failed (tc qdisc replace dev %s root handle %x: htb): %w",
			l.Attrs().Name, guardRoot>>16, err)
	}
	return guardRoot, nil
}

// dropOwnRoot deletes the guard's root htb qdisc from l when no filter
// is left on it; the kernel puts its default root qdisc back.
func dropOwnRoot(h *netlink.Handle, l netlink.Link) error {
	qs, err := h.QdiscList(l)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if a := q.Attrs(); a.Parent != netlink.HANDLE_ROOT || a.Handle != guardRoot || q.Type() != "htb" {
			continue
		}
		fs, err := h.FilterList(l, guardRoot)
		if err != nil || len(fs) > 0 {
			return err
		}
		if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return nil
}

// hookName names parent as tc's command line does.
func hookName(parent uint32) string {
	switch parent {
	case netlink.HANDLE_MIN_INGRESS:
		return "ingress"
	case netlink.HANDLE_MIN_EGRESS:
		return "egress"
	}
	return fmt.Sprintf("parent %x:", parent>>16)
}

// findGuard returns the guard filter on l at parent, or nil.
func findGuard(h *netlink.Handle, l netlink.Link, parent uint32) (*netlink.BpfFilter, error) {
	fs, err := h.FilterList(l, parent)
	if err != nil {
		return nil, fmt.Errorf("list %s filters: %w", hookName(parent), err)
	}
	for _, f := range fs {
		if b, ok := f.(*netlink.BpfFilter); ok && b.Priority == guardPref && b.Handle == guardHandle && b.Name == guardName {
			return b, nil
		}
	}
	return nil, nil
}

// checkGuard fails unless both l's ingress and its egress have the
// guard first.
func checkGuard(h *netlink.Handle, l netlink.Link) error {
	if err := checkFirst(h, l, netlink.HANDLE_MIN_INGRESS); err != nil {
		return err
	}
	egress, err := egressParent(h, l)
	if err != nil {
		return err
	}
	if egress == 0 {
		return errors.New("the drop filter is missing from the egress (no clsact and no classful root qdisc)")
	}
	return checkFirst(h, l, egress)
}

// checkFirst fails unless l has the guard at parent, in direct-action
// mode, for every protocol, and no other filter at its priority (the
// lowest number there is).
func checkFirst(h *netlink.Handle, l netlink.Link, parent uint32) error {
	fs, err := h.FilterList(l, parent)
	if err != nil {
		return fmt.Errorf("list %s filters: %w", hookName(parent), err)
	}
	var g *netlink.BpfFilter
	for _, f := range fs {
		a := f.Attrs()
		if b, ok := f.(*netlink.BpfFilter); ok && a.Priority == guardPref && a.Handle == guardHandle && b.Name == guardName {
			g = b
			continue
		}
		if a.Priority <= guardPref {
			return fmt.Errorf("a %s filter at %s pref %d may run before the drop filter", f.Type(), hookName(parent), a.Priority)
		}
	}
	switch {
	case g == nil:
		return fmt.Errorf("the drop filter is missing from the %s", hookName(parent))
	case !g.DirectAction || g.Protocol != unix.ETH_P_ALL:
		return fmt.Errorf("the drop filter on the %s is not direct-action for every protocol (direct-action %t, protocol %#04x)", hookName(parent), g.DirectAction, g.Protocol)
	}
	return nil
}

// prefTakenHint names what holds the guard's priority at parent, when
// something does: the filter cannot go there and attach fails.
func prefTakenHint(h *netlink.Handle, l netlink.Link, parent uint32) string {
	fs, err := h.FilterList(l, parent)
	if err != nil {
		return ""
	}
	for _, f := range fs {
		if a := f.Attrs(); a.Priority == guardPref {
			why := ""
			if parent != netlink.HANDLE_MIN_INGRESS && parent != netlink.HANDLE_MIN_EGRESS {
				why = "; an ingress qdisc (libvirt's outbound <bandwidth>) keeps clsact off, so the egress drop filter must go on the root qdisc"
			}
			return fmt.Sprintf(" (%s pref %d holds a %s filter that is not vifsec's; vifsec's drop filter must run first%s)", hookName(parent), guardPref, f.Type(), why)
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

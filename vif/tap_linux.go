package vif

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TapDevice is a tap interface vifsec created for a VM. vifsec attaches
// to its netdev side with OpenPacket like to any VIF; the other side, the
// file, is the VM's: QEMU's, or a test's or lab's standing in for it.
//
// The device is persistent (TUNSETPERSIST), so it outlives vifsec's
// file: after ReleaseQueue a hypervisor attaches by name, as
// `qemu -netdev tap,ifname=NAME,script=no,downscript=no` does (a tap
// without IFF_MULTI_QUEUE takes one file at a time, so while vifsec holds
// it QEMU's TUNSETIFF fails with EBUSY). Close deletes the device. If the
// process dies without Close, the device stays and CreateTap of the same
// name takes it over.
//
// Read, Write and File may be used from any goroutines; ReleaseQueue and
// Close make them return os.ErrClosed.
type TapDevice struct {
	name, netns string
	index       int
	file        *os.File

	closeOnce sync.Once
	closeErr  error
}

// CreateTap creates tap device name (IFF_TAP|IFF_NO_PI, no vnet_hdr) in
// network namespace nsName ("" = the daemon's), or takes over an
// existing persistent one with no file attached, and brings it up.
func CreateTap(name, nsName string) (*TapDevice, error) {
	fail := func(op string, err error) (*TapDevice, error) {
		where := ""
		if nsName != "" {
			where = " --netns " + nsName
		}
		return nil, fmt.Errorf("create tap --dev %s%s: %s: %w", name, where, op, err)
	}
	if name == "" || len(name) >= 16 {
		return fail("name", fmt.Errorf("want 1 to 15 bytes, got %q", name))
	}
	var ifce *water.Interface
	// /dev/net/tun creates the device in the namespace of the thread that
	// opens it.
	_, _, err := inNetns(nsName, func() (int, int, error) {
		var err error
		ifce, err = water.New(water.Config{
			DeviceType:             water.TAP,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: name, Persist: true},
		})
		return 0, 0, err
	})
	if err != nil {
		return fail("TUNSETIFF", err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return fail("water", fmt.Errorf("device file is a %T, want *os.File", ifce.ReadWriteCloser))
	}
	t := &TapDevice{name: ifce.Name(), netns: nsName, file: f}
	err = t.withHandle(func(h *netlink.Handle) error {
		l, err := h.LinkByName(t.name)
		if err != nil {
			return err
		}
		t.index = l.Attrs().Index
		return h.LinkSetUp(l)
	})
	if err != nil {
		t.Close()
		return fail("up", err)
	}
	return t, nil
}

// withHandle runs fn with an rtnetlink handle in the device's namespace.
func (t *TapDevice) withHandle(fn func(*netlink.Handle) error) error {
	ns := netns.None()
	if t.netns != "" {
		h, err := netns.GetFromName(t.netns)
		if err != nil {
			return fmt.Errorf("--netns %s: %w", t.netns, err)
		}
		defer h.Close()
		ns = h
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// Name is the interface name, for OpenPacket.
func (t *TapDevice) Name() string { return t.name }

// Index is the interface index in its namespace.
func (t *TapDevice) Index() int { return t.index }

// Read reads the next frame the netdev side transmitted (what the VM
// would receive), blocking until there is one.
func (t *TapDevice) Read(p []byte) (int, error) { return t.file.Read(p) }

// Write injects one whole Ethernet frame as if the VM sent it: it is
// received on the netdev side.
func (t *TapDevice) Write(p []byte) (int, error) { return t.file.Write(p) }

// File is vifsec's file on the device, for handing to a hypervisor
// (`-netdev tap,fd=N`). It stays owned by the TapDevice.
func (t *TapDevice) File() *os.File { return t.file }

// ReleaseQueue closes vifsec's file on the device, which stays, so that a
// hypervisor can attach to it by name.
func (t *TapDevice) ReleaseQueue() error {
	if err := t.file.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("tap %s: release: %w", t.name, err)
	}
	return nil
}

// Close closes vifsec's file and deletes the device.
func (t *TapDevice) Close() error {
	t.closeOnce.Do(func() {
		t.file.Close()
		err := t.withHandle(func(h *netlink.Handle) error {
			l, err := h.LinkByName(t.name)
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil // already gone: its namespace was deleted, or someone else did it
			}
			if err != nil {
				return err
			}
			if l.Attrs().Index != t.index {
				return nil // a new device with the same name: not ours
			}
			return h.LinkDel(l)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // fs.ErrNotExist: the namespace is gone, and the device with it
			t.closeErr = fmt.Errorf("tap %s: delete: %w", t.name, err)
		}
	})
	return t.closeErr
}

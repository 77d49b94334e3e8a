package vif

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// PacketPort is a Port on an AF_PACKET socket bound to one interface.
type PacketPort struct {
	name    string
	ifindex int
	f       *os.File
	rc      syscall.RawConn

	rx, tx mmsgBatch
	// recvFn and sendFn are created once: a method value made per call
	// would allocate on every batch.
	recvFn, sendFn func(fd uintptr) bool
	rxN, txN       int
	rxErr, txErr   error

	// Truncated counts frames larger than the read buffer, dropped.
	Truncated atomic.Uint64
	// TxDropped counts frames the kernel refused to send (ENOBUFS, link
	// down, too big), dropped rather than retried.
	TxDropped atomic.Uint64
	closed    atomic.Bool
}

// OpenPacket opens an AF_PACKET port on the interface named name, in the
// network namespace nsName ("" = the daemon's own). It puts the interface
// in promiscuous mode for the socket's lifetime: a VIF carries the VM's
// MAC, an uplink carries every VM's.
func OpenPacket(name, nsName string) (*PacketPort, error) {
	return OpenPacketWith(name, nsName, PacketOptions{})
}

// OpenPacketWith is OpenPacket with options.
func OpenPacketWith(name, nsName string, opt PacketOptions) (*PacketPort, error) {
	fd, ifindex, err := inNetns(nsName, func() (int, int, error) {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return -1, 0, fmt.Errorf("--dev %s: %w", name, err)
		}
		// Protocol 0: the socket receives nothing until bind names the
		// interface and ETH_P_ALL. Created with ETH_P_ALL, it would take
		// every interface's frames until bind.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, 0, fmt.Errorf("AF_PACKET socket: %w", err)
		}
		return fd, ifi.Index, nil
	})
	if err != nil {
		return nil, err
	}
	fail := func(op string, err error) (*PacketPort, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("vif %s: %s: %w", name, op, err)
	}
	for _, o := range []struct {
		name string
		opt  int
	}{{"PACKET_AUXDATA", unix.PACKET_AUXDATA}, {"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING}, {"PACKET_QDISC_BYPASS", unix.PACKET_QDISC_BYPASS}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, 1); err != nil {
			return fail(o.name, err)
		}
	}
	if opt.VnetHdr {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fail("PACKET_VNET_HDR", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("promiscuous", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &PacketPort{name: name, ifindex: ifindex, f: f, rc: rc}
	p.rx.init(true)
	p.tx.init(false)
	p.recvFn = p.recv
	p.sendFn = p.send
	return p, nil
}

// inNetns runs fn with the calling thread in the named network namespace.
func inNetns(nsName string, fn func() (int, int, error)) (int, int, error) {
	if nsName == "" {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return -1, 0, fmt.Errorf("--netns: current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return -1, 0, fmt.Errorf("--netns %s: %w", nsName, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return -1, 0, fmt.Errorf("--netns %s: enter: %w", nsName, err)
	}
	a, b, err := fn()
	if err2 := netns.Set(orig); err2 != nil {
		// The thread is in the wrong namespace: never let Go reuse it.
		panic(fmt.Sprintf("vif: cannot return to the daemon's netns: %v", err2))
	}
	return a, b, err
}

func (p *PacketPort) Name() string { return p.name }

// Ifindex is the interface index in its namespace.
func (p *PacketPort) Ifindex() int { return p.ifindex }

func (p *PacketPort) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	return p.f.Close()
}

func (p *PacketPort) ReadBatch(bufs [][]byte, sizes []int, meta []Meta, offset int) (int, error) {
	n := min(len(bufs), len(sizes), len(meta), MaxBatch)
	p.rx.setBufs(bufs[:n], offset)
	p.rxN, p.rxErr = 0, nil
	for {
		if err := p.rc.Read(p.recvFn); err != nil {
			return 0, p.mapErr(err)
		}
		if p.rxErr != nil {
			return 0, p.mapErr(p.rxErr)
		}
		for i := 0; i < p.rxN; i++ {
			l, m, trunc := p.rx.result(i)
			if trunc {
				p.Truncated.Add(1)
				l = 0 // an empty frame: the caller skips it
			}
			sizes[i], meta[i] = l, m
		}
		if p.rxN > 0 {
			return p.rxN, nil
		}
		p.rx.setBufs(bufs[:n], offset)
	}
}

func (p *PacketPort) recv(fd uintptr) bool {
	n, errno := p.rx.recvmmsg(fd)
	if errno == unix.EAGAIN {
		return false
	}
	if errno != 0 {
		p.rxErr = errno
		return true
	}
	p.rxN = n
	return true
}

func (p *PacketPort) WriteBatch(frames [][]byte) (int, error) {
	sent := 0
	for sent < len(frames) {
		n := min(len(frames)-sent, MaxBatch)
		p.tx.setFrames(frames[sent : sent+n])
		p.txN, p.txErr = 0, nil
		if err := p.rc.Write(p.sendFn); err != nil {
			return sent, p.mapErr(err)
		}
		if p.txErr != nil {
			return sent, p.mapErr(p.txErr)
		}
		sent += p.txN
	}
	return sent, nil
}

func (p *PacketPort) send(fd uintptr) bool {
	n, errno := p.tx.sendmmsg(fd)
	switch errno {
	case 0:
		p.txN = n
	case unix.EAGAIN:
		return false
	case unix.ENOBUFS, unix.EMSGSIZE, unix.ENETDOWN, unix.ENXIO:
		// The first frame cannot go out now; drop it rather than spin.
		p.txN = 1
		p.TxDropped.Add(1)
	default:
		p.txErr = errno
	}
	return true
}

func (p *PacketPort) mapErr(err error) error {
	if p.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("vif %s: %w", p.name, err)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

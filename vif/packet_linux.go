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
	recvFn, sendFn, peekFn func(fd uintptr) bool
	rxN, txN               int
	rxErr, txErr           error
	// peek receives WaitRead's look at the next frame (a virtio-net
	// header's worth: the kernel refuses a shorter read of a port
	// that has them).
	peek [VnetHdrLen]byte

	// Truncated counts frames larger than the read buffer, dropped.
	Truncated atomic.Uint64
	// TxDropped counts frames the kernel refused to send (ENOBUFS, link
	// down, too big), dropped rather than retried.
	TxDropped atomic.Uint64
	closed    atomic.Bool

	rawFD int
	// group: the fanout group's queues, this port first, when this port
	// was opened with Queues > 1 (nil otherwise, and on other queues).
	group []*PacketPort
}

// OpenPacket opens an AF_PACKET port on the interface named name, in the
// network namespace nsName ("" = the daemon's own). It puts the interface
// in promiscuous mode for the socket's lifetime: a VIF carries the VM's
// MAC, an uplink carries every VM's.
func OpenPacket(name, nsName string) (*PacketPort, error) {
	return OpenPacketWith(name, nsName, PacketOptions{})
}

// OpenPacketWith is OpenPacket with options. With opt.Queues > 1 it
// opens that many sockets in one PACKET_FANOUT group and returns the
// first, whose Queues are all of them (vif.Multi); closing it closes
// every queue.
func OpenPacketWith(name, nsName string, opt PacketOptions) (*PacketPort, error) {
	first, err := openSocket(name, nsName, opt, false)
	if err != nil || opt.Queues <= 1 {
		return first, err
	}
	fail := func(op string, err error) (*PacketPort, error) {
		first.Close()
		return nil, fmt.Errorf("vif %s: %s: %w", name, op, err)
	}
	// Hash mode; the kernel picks a group id no other group of the
	// namespace has. Frames the host itself sends on the interface are
	// not the group's (PACKET_IGNORE_OUTGOING is per socket, and a
	// socket in a group receives through the group). No
	// PACKET_FANOUT_FLAG_DEFRAG: it would hand over reassembled IPv4
	// datagrams, which the data path classifies as fragments (RFC 4301
	// §7) and does not reassemble; without it every fragment of a
	// datagram hashes on addresses and protocol alone, so a datagram's
	// fragments still reach one socket in order.
	const flags = unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	if err := unix.SetsockoptInt(first.fd(), unix.SOL_PACKET, unix.PACKET_FANOUT, (flags|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16); err != nil {
		return fail("PACKET_FANOUT", err)
	}
	v, err := unix.GetsockoptInt(first.fd(), unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return fail("PACKET_FANOUT group id", err)
	}
	id := v & 0xffff
	first.group = []*PacketPort{first}
	for range opt.Queues - 1 {
		q, err := openSocket(name, nsName, opt, true)
		if err != nil {
			return fail("queue", err)
		}
		first.group = append(first.group, q)
		if err := unix.SetsockoptInt(q.fd(), unix.SOL_PACKET, unix.PACKET_FANOUT, id|flags<<16); err != nil {
			return fail("PACKET_FANOUT join", err)
		}
		// In the group now: it receives its share only.
		if err := unix.SetsockoptInt(q.fd(), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
			return fail("SO_DETACH_FILTER", err)
		}
	}
	return first, nil
}

// openSocket opens one AF_PACKET socket bound to the interface. With
// muted, the socket drops everything until its filter is detached: a
// socket about to join a fanout group must not receive, between bind and
// joining, copies of frames the group's other sockets receive too.
func openSocket(name, nsName string, opt PacketOptions, muted bool) (*PacketPort, error) {
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
	if muted {
		dropAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		prog := unix.SockFprog{Len: 1, Filter: &dropAll[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fail("SO_ATTACH_FILTER", err)
		}
	}
	opts := []struct {
		name string
		opt  int
	}{{"PACKET_AUXDATA", unix.PACKET_AUXDATA}, {"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING}, {"PACKET_QDISC_BYPASS", unix.PACKET_QDISC_BYPASS}}
	if opt.Qdisc {
		opts = opts[:2]
	}
	for _, o := range opts {
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
	// A bind to a device that is down (or went down since the caller
	// looked) leaves ENETDOWN pending on the socket (packet_do_bind),
	// which its first read or write would report even with the link up
	// again by then. Reading SO_ERROR clears it: the socket starts clean,
	// receives once the device is up (NETDEV_UP hooks it in), and a
	// device that goes down later raises the error anew.
	_, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	f := os.NewFile(uintptr(fd), "packet:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &PacketPort{name: name, ifindex: ifindex, f: f, rc: rc, rawFD: fd}
	p.rx.init(true)
	p.tx.init(false)
	p.recvFn = p.recv
	p.sendFn = p.send
	p.peekFn = p.peekOne
	return p, nil
}

// fd is the socket, for setup only (before any goroutine reads it).
func (p *PacketPort) fd() int { return p.rawFD }

// Queues returns the port's fanout queues, itself first (vif.Multi); a
// port opened with one queue is its only queue.
func (p *PacketPort) Queues() []Port {
	if len(p.group) == 0 {
		return []Port{p}
	}
	qs := make([]Port, len(p.group))
	for i, q := range p.group {
		qs[i] = q
	}
	return qs
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
	for _, q := range p.group[min(1, len(p.group)):] {
		q.Close()
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

// WaitRead waits until a frame is queued on the socket (vif.Waiter),
// leaving it there for ReadBatch.
func (p *PacketPort) WaitRead() error {
	p.rxErr = nil
	if err := p.rc.Read(p.peekFn); err != nil {
		return p.mapErr(err)
	}
	if p.rxErr != nil {
		return p.mapErr(p.rxErr)
	}
	return nil
}

func (p *PacketPort) peekOne(fd uintptr) bool {
	switch errno := peekFrame(fd, p.peek[:]); errno {
	case unix.EAGAIN:
		return false
	case 0, unix.EINTR:
		// A frame, or a wake-up ReadBatch sorts out (it waits itself
		// when nothing is there after all).
	default:
		p.rxErr = errno
	}
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
	if errno == unix.ENETDOWN {
		// It may be stale: a link that went down and came up since the
		// socket was last read leaves ENETDOWN pending (packet_notifier
		// at NETDEV_DOWN), and the kernel reports and clears it when this
		// send allocates its first frame, before it looks at the device.
		// No frame went: send them again. A device still down refuses
		// again (ENETDOWN from its flags), and would refuse every frame
		// of the batch: they are dropped at once.
		if n, errno = p.tx.sendmmsg(fd); errno == unix.ENETDOWN {
			p.txN = p.tx.n
			p.TxDropped.Add(uint64(p.tx.n))
			return true
		}
	}
	switch errno {
	case 0:
		p.txN = n
	case unix.EAGAIN:
		return false
	case unix.ENOBUFS, unix.EMSGSIZE, unix.ENXIO:
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

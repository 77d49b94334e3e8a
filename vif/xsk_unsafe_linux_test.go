package vif

// xskPort receives frames through an AF_XDP socket, for BenchmarkReceive
// only: an XDP program on the interface (native mode, which veth has)
// redirects every frame to the socket through an XSKMAP, and the kernel
// copies it (XDP_COPY) into a chunk of memory the socket registered
// (UMEM), announced on the RX ring; ReadBatch copies it out into the
// caller's buffer and gives the chunk back on the FILL ring. Frames the
// program redirects never reach the host's stack or packet sockets.
//
//  1. UMEM: xskChunks chunks of xskChunk bytes, registered with
//     XDP_UMEM_REG; every chunk starts on the FILL ring.
//  2. Rings (include/uapi/linux/if_xdp.h): FILL and COMPLETION hold
//     UMEM addresses (u64), RX holds struct xdp_desc {addr u64, len u32,
//     options u32}; each has a producer and a consumer index whose
//     offsets XDP_MMAP_OFFSETS tells.
//  3. Bind to queue 0 in copy mode, put the socket in the XSKMAP at key
//     0, attach the program with a BPF link (closing it detaches).

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	xskChunk  = 2048
	xskChunks = 2048 // also each ring's size
)

type xskRing struct {
	prod, cons *uint32
	desc       []byte
	mem        []byte
}

type xskPort struct {
	name                  string
	fd, mapFD, progFD, ln int
	umem                  []byte
	rx, fill              xskRing
	poll                  []unix.PollFd
	closed                atomic.Bool
	// Truncated counts frames larger than the caller's room; BadDesc
	// descriptors pointing outside the UMEM.
	Truncated, BadDesc atomic.Uint64
}

func openXSK(name, nsName string) (*xskPort, error) {
	x := &xskPort{name: name, fd: -1, mapFD: -1, progFD: -1, ln: -1}
	_, _, err := inNetns(nsName, func() (int, int, error) { return 0, 0, x.setup(name) })
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("AF_XDP on %s: %w", name, err)
	}
	x.poll = []unix.PollFd{{Fd: int32(x.fd), Events: unix.POLLIN}}
	return x, nil
}

func (x *xskPort) setup(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	if x.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if x.umem, err = unix.Mmap(-1, 0, xskChunks*xskChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("UMEM: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))), Len: uint64(len(x.umem)), Size: xskChunk}
	if err := setsockopt(x.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("XDP_UMEM_REG: %w", err)
	}
	for _, o := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(x.fd, unix.SOL_XDP, o, xskChunks); err != nil {
			return fmt.Errorf("ring %d: %w", o, err)
		}
	}
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return fmt.Errorf("XDP_MMAP_OFFSETS: %w", e)
	}
	if x.rx, err = mapRing(x.fd, off.Rx, unix.XDP_PGOFF_RX_RING, 16); err != nil {
		return fmt.Errorf("RX ring: %w", err)
	}
	if x.fill, err = mapRing(x.fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8); err != nil {
		return fmt.Errorf("FILL ring: %w", err)
	}
	for i := range xskChunks {
		binary.NativeEndian.PutUint64(x.fill.desc[i*8:], uint64(i*xskChunk))
	}
	atomic.StoreUint32(x.fill.prod, xskChunks)
	// The queue stays busy for a moment after the previous socket on it
	// closed: the kernel releases its UMEM from a work queue.
	for tries := 0; ; tries++ {
		err := unix.Bind(x.fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifi.Index)})
		if err == nil {
			break
		}
		if err != unix.EBUSY || tries == 400 {
			return fmt.Errorf("bind: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, …
	mapAttr := [16]uint32{unix.BPF_MAP_TYPE_XSKMAP, 4, 4, 1}
	fd, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&mapAttr)), unsafe.Sizeof(mapAttr))
	if e != 0 {
		return fmt.Errorf("BPF_MAP_CREATE XSKMAP: %w", e)
	}
	x.mapFD = int(fd)
	// BPF_MAP_UPDATE_ELEM: map_fd u32, pad, key u64, value u64, flags u64.
	key, val := uint32(0), uint32(x.fd)
	upd := struct {
		fd, _      uint32
		key, value uint64
		flags      uint64
	}{fd: uint32(x.mapFD), key: uint64(uintptr(unsafe.Pointer(&key))), value: uint64(uintptr(unsafe.Pointer(&val)))}
	_, _, e = unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_UPDATE_ELEM, uintptr(unsafe.Pointer(&upd)), unsafe.Sizeof(upd))
	runtime.KeepAlive(&key)
	runtime.KeepAlive(&val)
	if e != 0 {
		return fmt.Errorf("BPF_MAP_UPDATE_ELEM: %w", e)
	}
	if x.progFD, err = loadRedirectProg(x.mapFD); err != nil {
		return err
	}
	// BPF_LINK_CREATE: prog_fd, target_ifindex, attach_type, flags;
	// the ifindex is looked up in the calling thread's namespace.
	linkAttr := [16]uint32{uint32(x.progFD), uint32(ifi.Index), unix.BPF_XDP, unix.XDP_FLAGS_DRV_MODE}
	fd, _, e = unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&linkAttr)), unsafe.Sizeof(linkAttr))
	if e != 0 {
		return fmt.Errorf("BPF_LINK_CREATE XDP (native): %w", e)
	}
	x.ln = int(fd)
	return nil
}

// loadRedirectProg loads an XDP program that redirects every frame to
// the socket at key 0 of the XSKMAP mapFD, and passes it to the stack if
// there is none:
//
//	r2 = 0; r1 = map; r3 = XDP_PASS; call bpf_redirect_map; exit
func loadRedirectProg(mapFD int) (int, error) {
	const (
		xdpPass         = 2
		funcRedirectMap = 51 // enum bpf_func_id BPF_FUNC_redirect_map
	)
	insn := func(code, dst, src uint8, imm int32) uint64 {
		return uint64(code) | uint64(dst|src<<4)<<8 | uint64(uint32(imm))<<32
	}
	insns := []uint64{
		insn(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_K, 2, 0, 0),
		insn(unix.BPF_LD|unix.BPF_DW|unix.BPF_IMM, 1, unix.BPF_PSEUDO_MAP_FD, int32(mapFD)), 0,
		insn(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_K, 3, 0, xdpPass),
		insn(unix.BPF_JMP|unix.BPF_CALL, 0, 0, funcRedirectMap),
		insn(unix.BPF_JMP|unix.BPF_EXIT, 0, 0, 0),
	}
	license := []byte("GPL\x00")
	log := make([]byte, 4096)
	attr := bpfProgLoadAttr{
		progType:           unix.BPF_PROG_TYPE_XDP,
		insnCnt:            uint32(len(insns)),
		insns:              uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel:           1,
		logSize:            uint32(len(log)),
		logBuf:             uint64(uintptr(unsafe.Pointer(&log[0]))),
		expectedAttachType: unix.BPF_XDP,
	}
	copy(attr.progName[:], "vifsec_xsk")
	fd, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	if e != 0 {
		return -1, fmt.Errorf("BPF_PROG_LOAD XDP: %w: %s", e, cstring(log))
	}
	return int(fd), nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); e != 0 {
		return e
	}
	return nil
}

func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, descSize int) (xskRing, error) {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc)+xskChunks*descSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return xskRing{}, err
	}
	return xskRing{
		prod: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		cons: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		desc: mem[off.Desc:],
		mem:  mem,
	}, nil
}

func (x *xskPort) Name() string                     { return x.name }
func (x *xskPort) WriteBatch([][]byte) (int, error) { return 0, fmt.Errorf("xskPort: receive only") }

// Close detaches the program and frees everything; the benchmark calls
// it with no ReadBatch running (a watchdog's Close ends a blocked
// ReadBatch at its next poll timeout instead).
func (x *xskPort) Close() error {
	if x.closed.Swap(true) {
		return nil
	}
	for _, fd := range []int{x.ln, x.progFD, x.mapFD, x.fd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}

// free unmaps the rings and UMEM, after Close, once no ReadBatch runs.
func (x *xskPort) free() {
	for _, m := range [][]byte{x.rx.mem, x.fill.mem, x.umem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
}

// ReadBatch is Port.ReadBatch: it waits in poll(2), 100 ms at a time,
// for the RX ring to hold frames.
func (x *xskPort) ReadBatch(bufs [][]byte, sizes []int, meta []Meta, offset int) (int, error) {
	const mask = xskChunks - 1
	for {
		if x.closed.Load() {
			return 0, ErrClosed
		}
		cons := atomic.LoadUint32(x.rx.cons)
		avail := atomic.LoadUint32(x.rx.prod) - cons
		if avail == 0 {
			if _, err := unix.Poll(x.poll, 100); err != nil && err != unix.EINTR {
				return 0, err
			}
			continue
		}
		n := min(int(avail), len(bufs), len(sizes), len(meta), MaxBatch)
		fill := atomic.LoadUint32(x.fill.prod)
		for i := range n {
			d := x.rx.desc[int((cons+uint32(i))&mask)*16:]
			addr, l := binary.NativeEndian.Uint64(d), uint64(binary.NativeEndian.Uint32(d[8:]))
			room := bufs[i][offset:]
			switch {
			case addr > uint64(len(x.umem)) || l > uint64(len(x.umem))-addr:
				x.BadDesc.Add(1)
				sizes[i] = 0
			case l > uint64(len(room)):
				x.Truncated.Add(1)
				sizes[i] = 0
			default:
				sizes[i] = copy(room, x.umem[addr:addr+l])
			}
			meta[i] = Meta{}
			binary.NativeEndian.PutUint64(x.fill.desc[int((fill+uint32(i))&mask)*8:], addr&^(xskChunk-1))
		}
		atomic.StoreUint32(x.fill.prod, fill+uint32(n))
		atomic.StoreUint32(x.rx.cons, cons+uint32(n))
		return n, nil
	}
}

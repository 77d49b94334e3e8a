package vif

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// auxSpace is the control buffer for one struct tpacket_auxdata
// (include/uapi/linux/if_packet.h), which PACKET_AUXDATA attaches to each
// received frame.
var auxSpace = unix.CmsgSpace(sizeofTpacketAuxdata)

const sizeofTpacketAuxdata = 20

// mmsgBatch is the kernel-facing memory of one recvmmsg/sendmmsg call:
// struct mmsghdr, iovecs and control buffers for MaxBatch frames, allocated
// once per port.
type mmsgBatch struct {
	msgs [MaxBatch]unix.Mmsghdr
	iovs [MaxBatch]unix.Iovec
	ctl  []byte
	n    int
}

func (b *mmsgBatch) init(rx bool) {
	if rx {
		b.ctl = make([]byte, MaxBatch*auxSpace)
	}
	for i := range b.msgs {
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.Iovlen = 1
	}
}

func (b *mmsgBatch) setBufs(bufs [][]byte, offset int) {
	b.n = len(bufs)
	for i, buf := range bufs {
		room := buf[offset:]
		b.iovs[i].Base = unsafe.SliceData(room)
		b.iovs[i].SetLen(len(room))
		h := &b.msgs[i].Hdr
		h.Control = &b.ctl[i*auxSpace]
		h.SetControllen(auxSpace)
		h.Flags = 0
		b.msgs[i].Len = 0
	}
}

func (b *mmsgBatch) setFrames(frames [][]byte) {
	b.n = len(frames)
	for i, f := range frames {
		b.iovs[i].Base = unsafe.SliceData(f)
		b.iovs[i].SetLen(len(f))
		b.msgs[i].Hdr.Control = nil
		b.msgs[i].Hdr.Controllen = 0
	}
}

func (b *mmsgBatch) recvmmsg(fd uintptr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(b.n), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

func (b *mmsgBatch) sendmmsg(fd uintptr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(b.n), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

// peekFrame looks at the next frame queued on the socket fd without
// taking it or waiting: errno 0 when there is one, EAGAIN when not.
func peekFrame(fd uintptr, b []byte) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	return e
}

// result returns frame i's length and metadata, and whether the kernel cut
// it (MSG_TRUNC: it did not fit the buffer).
func (b *mmsgBatch) result(i int) (n int, m Meta, truncated bool) {
	h := &b.msgs[i].Hdr
	if h.Flags&unix.MSG_TRUNC != 0 {
		return 0, Meta{}, true
	}
	ctl := b.ctl[i*auxSpace : i*auxSpace+int(h.Controllen)]
	// struct cmsghdr { size_t len; int level; int type; } then data.
	if len(ctl) >= unix.SizeofCmsghdr+sizeofTpacketAuxdata {
		level := int32(binary.NativeEndian.Uint32(ctl[8:12]))
		typ := int32(binary.NativeEndian.Uint32(ctl[12:16]))
		if level == unix.SOL_PACKET && typ == unix.PACKET_AUXDATA {
			d := ctl[unix.SizeofCmsghdr:]
			// struct tpacket_auxdata: status u32, len u32, snaplen u32,
			// mac u16, net u16, vlan_tci u16, vlan_tpid u16.
			status := binary.NativeEndian.Uint32(d[0:4])
			if status&unix.TP_STATUS_VLAN_VALID != 0 {
				m.VLAN = binary.NativeEndian.Uint16(d[16:18]) & 0x0fff
				m.Tagged = true
			}
		}
	}
	return int(b.msgs[i].Len), m, false
}

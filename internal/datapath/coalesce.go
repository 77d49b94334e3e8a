package datapath

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/vif"
)

// Ingress coalescing (GRO-like) toward VMs whose VIF takes virtio-net
// headers: consecutive TCP segments of one flow for one VM, in one batch,
// are merged into a single super-frame described by its header (GSO TCPv4 or
// TCPv6, NEEDS_CSUM), so the guest's stack handles one large packet instead
// of dozens. The rules are Linux GRO's (net/ipv4/tcp_offload.c): same
// addresses, ports, ACK, window, options and TOS; the next sequence number;
// every segment but the last the same size; no SYN, FIN, RST, URG or CWR;
// PSH closes the run. Anything else flushes what is pending and passes.
//
// Stages (per frame delivered to a VM):
//  1. Not eligible (not TCP, options in IPv4, extension headers, flags):
//     flush the pending run, deliver the frame as it is.
//  2. Same flow, next in sequence, same size: append its payload.
//  3. Otherwise flush the pending run and start a new one with the frame.

const maxCoalesced = 65535 - 60 // IP payload the super-frame may reach

// coalescer is a worker's pending run: one super-frame being built.
type coalescer struct {
	buf  []byte // readOff headroom, then the frame
	vm   *vmState
	n    int // frame length so far
	l3   int // offset of the IP header in the frame
	l4   int // offset of the TCP header
	pay  int // offset of the payload of the first segment
	v6   bool
	size int // payload of each segment (gso_size)
	segs int
	next uint32 // sequence number expected next
	done bool   // a short or PSH segment ended the run
}

// tcpSeg describes an eligible TCP segment in an Ethernet frame.
type tcpSeg struct {
	l4, pay int
	v6      bool
}

// eligible reports whether frame is a plain TCP data segment that can be
// merged (stage 1).
func eligible(frame []byte) (tcpSeg, bool) {
	if len(frame) < ethLen+40 {
		return tcpSeg{}, false
	}
	ip := frame[ethLen:]
	var l4 int
	var v6 bool
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherIPv4:
		if ip[0] != 0x45 || ip[9] != protoTCP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 ||
			int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
			return tcpSeg{}, false
		}
		l4 = ethLen + 20
	case etherIPv6:
		if ip[6] != protoTCP || ipv6Len+int(binary.BigEndian.Uint16(ip[4:6])) != len(ip) {
			return tcpSeg{}, false
		}
		l4, v6 = ethLen+ipv6Len, true
	default:
		return tcpSeg{}, false
	}
	if len(frame) < l4+20 {
		return tcpSeg{}, false
	}
	t := frame[l4:]
	doff := int(t[12]>>4) * 4
	flags := t[13]
	// ACK must be set; SYN, FIN, RST, URG, CWR end or forbid merging.
	if doff < 20 || l4+doff >= len(frame) || flags&0x10 == 0 || flags&(0x01|0x02|0x04|0x20|0x80) != 0 {
		return tcpSeg{}, false
	}
	return tcpSeg{l4: l4, pay: l4 + doff, v6: v6}, true
}

// coalesce delivers the frame buf[start:end] to vm, merging it into the
// pending run when it can.
func (w *worker) coalesce(vm *vmState, buf []byte, start, end int) {
	c := &w.co
	frame := buf[start:end]
	seg, ok := eligible(frame)
	if !ok {
		w.flushRun()
		w.queue(vm.port, buf, start, end, vm.stats)
		return
	}
	if c.vm == vm && !c.done && w.sameFlow(frame, seg) {
		// Stage 2.
		pay := frame[seg.pay:]
		if len(pay) <= c.size && c.n-c.l3+len(pay) <= maxCoalesced {
			copy(c.buf[readOff+c.n:], pay)
			c.n += len(pay)
			c.segs++
			c.next += uint32(len(pay))
			h := c.buf[readOff:]
			h[c.l4+13] |= frame[seg.l4+13] & 0x08 // PSH
			if len(pay) < c.size || frame[seg.l4+13]&0x08 != 0 {
				c.done = true
			}
			return
		}
	}
	// Stage 3.
	w.flushRun()
	if len(frame) > len(c.buf)-readOff {
		w.queue(vm.port, buf, start, end, vm.stats)
		return
	}
	*c = coalescer{buf: c.buf, vm: vm, n: copy(c.buf[readOff:], frame), l3: ethLen, l4: seg.l4, pay: seg.pay, v6: seg.v6,
		size: len(frame) - seg.pay, segs: 1}
	c.next = binary.BigEndian.Uint32(frame[seg.l4+4:]) + uint32(c.size)
	c.done = frame[seg.l4+13]&0x08 != 0
}

// sameFlow compares everything but the sequence number, the payload and
// the IP length/ID/checksum and TCP flags/checksum with the run's first
// segment.
func (w *worker) sameFlow(frame []byte, seg tcpSeg) bool {
	c := &w.co
	h := c.buf[readOff : readOff+c.pay]
	if seg.v6 != c.v6 || seg.pay != c.pay || len(frame) < seg.pay {
		return false
	}
	if string(frame[0:12]) != string(h[0:12]) {
		return false
	}
	ip, hip := frame[ethLen:], h[ethLen:]
	if c.v6 {
		// Version, traffic class, flow label; next header, hop limit; addresses.
		if string(ip[0:4]) != string(hip[0:4]) || string(ip[6:40]) != string(hip[6:40]) {
			return false
		}
	} else if ip[1] != hip[1] || ip[8] != hip[8] || string(ip[12:20]) != string(hip[12:20]) {
		return false
	}
	t, ht := frame[seg.l4:seg.pay], h[c.l4:c.pay]
	return binary.BigEndian.Uint32(t[4:8]) == c.next &&
		string(t[0:4]) == string(ht[0:4]) && // ports
		string(t[8:12]) == string(ht[8:12]) && // ACK
		string(t[14:16]) == string(ht[14:16]) && // window
		string(t[20:]) == string(ht[20:]) // options (timestamps included)
}

// flushRun sends the pending run: as it is when it holds one segment,
// otherwise as one super-frame with its virtio-net header.
func (w *worker) flushRun() {
	c := &w.co
	if c.vm == nil {
		return
	}
	vm := c.vm
	c.vm = nil
	f := c.buf[readOff : readOff+c.n]
	if c.segs > 1 {
		ip := f[c.l3:]
		l4len := c.n - c.l4
		if c.v6 {
			binary.BigEndian.PutUint16(ip[4:6], uint16(c.n-c.l3-ipv6Len))
		} else {
			binary.BigEndian.PutUint16(ip[2:4], uint16(c.n-c.l3))
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:12], ^csum.Sum(ip[:20], 0))
		}
		// NEEDS_CSUM: the guest's stack treats the data as locally
		// checksummed (it was authenticated by ESP's ICV, or checked by
		// the sender); the field holds the pseudo-header sum, as a TSO
		// sender leaves it.
		var src, dst []byte
		if c.v6 {
			src, dst = ip[8:24], ip[24:40]
		} else {
			src, dst = ip[12:16], ip[16:20]
		}
		binary.BigEndian.PutUint16(f[c.l4+16:], csum.Pseudo(src, dst, protoTCP, l4len))
		gsoType := offload.GSOTCPv4
		if c.v6 {
			gsoType = offload.GSOTCPv6
		}
		h := offload.VnetHdr{Flags: offload.FlagNeedsCsum, GSOType: gsoType, HdrLen: uint16(c.pay), GSOSize: uint16(c.size),
			CsumStart: uint16(c.l4), CsumOffset: 16}
		h.Put(c.buf[readOff-vif.VnetHdrLen:])
		w.Coalesced += uint64(c.segs)
	}
	if w.nout == maxOut {
		w.flush()
	}
	w.out[w.nout] = outFrame{dst: vm.port, buf: c.buf, start: readOff, end: readOff + c.n, vm: vm.stats, hasHdr: c.segs > 1}
	w.nout++
	// The run's buffer is reused by the next run: send now.
	w.flush()
}

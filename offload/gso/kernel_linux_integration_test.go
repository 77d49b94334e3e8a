//go:build linux

package gso_test

// The capture-based golden test the issue asks for: Segment against the
// Linux kernel's own software GSO, on the same input.
//
// Two network namespaces joined by a veth pair. In the sender namespace a
// packet socket with PACKET_VNET_HDR injects each super-frame with its
// virtio_net_hdr into a0, exactly as a guest's TSO/USO frame arrives
// (packet_snd → virtio_net_hdr_to_skb → a GSO skb). a0 has TX checksum
// offload off, which turns TSO/USO off too, so the kernel segments the
// skb itself (validate_xmit_skb → skb_gso_segment → tcp_gso_segment /
// __udp_gso_segment, checksums in software) before veth carries the
// segments to b0. In the receiver namespace a packet socket on b0 (the
// capture mechanism tcpdump uses; GRO off on b0 so nothing is merged back)
// captures what arrived. Segment, given the same frame, header and an MTU
// that does not constrain it (the kernel cuts at gso_size), must produce
// the same frames byte for byte; on a mismatch the test reports the
// differing fields (sequence numbers, flags, lengths, IP IDs, checksums).
//
// The stream: one TCPv4 flow of super-frames with DF, timestamps, CWR
// (ECN) on the first, PSH in the middle and FIN on the last; the same over
// IPv6 with a hop-by-hop header; IPv4 with options; 802.1Q-tagged; USO
// over IPv4 and IPv6. And plain (GSO_NONE) frames with NEEDS_CSUM, which
// the kernel finishes in skb_checksum_help: csum.Complete must write the
// same checksum (0xffff for a UDP sum of zero).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("integration tests need root in CI (network namespaces, packet sockets)")
	}
	t.Skip("needs root: creates network namespaces and packet sockets")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns makes a named namespace that t's cleanup deletes.
func newNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("vifsec-gso-%s-%d", role, os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", name, err, out)
		}
	})
	run(t, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// packetSocket opens an AF_PACKET socket bound to dev in namespace ns. The
// goroutine that enters ns keeps its thread locked and lets it die with
// it, so no thread returns to the scheduler inside ns.
func packetSocket(ns, dev string, proto uint16, vnet bool) (int, error) {
	type res struct {
		fd  int
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			c <- res{-1, err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			c <- res{-1, err}
			return
		}
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			c <- res{-1, err}
			return
		}
		p := proto<<8 | proto>>8 // htons
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(p))
		if err != nil {
			c <- res{-1, err}
			return
		}
		if vnet {
			err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
		}
		if err == nil {
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
		if err == nil {
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
		}
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: p, Ifindex: ifi.Index})
		}
		if err != nil {
			unix.Close(fd)
			c <- res{-1, err}
			return
		}
		c <- res{fd, nil}
	}()
	r := <-c
	return r.fd, r.err
}

// kernelStream is the known stream: super-frames as a guest sends them.
func kernelStream() []struct {
	name string
	p    ot.Packet
	gso  uint16
	ecn  bool
} {
	ts := []byte{1, 1, 8, 10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	var s []struct {
		name string
		p    ot.Packet
		gso  uint16
		ecn  bool
	}
	add := func(name string, p ot.Packet, gsoSize uint16, ecn bool) {
		s = append(s, struct {
			name string
			p    ot.Packet
			gso  uint16
			ecn  bool
		}{name, p, gsoSize, ecn})
	}
	seq := uint32(0xfffe0000) // wraps during the stream
	for i, size := range []int{65483, 30000, 1448*7 + 1, 20000} {
		p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, ID: uint16(0xfff0 + i*100), TOS: 0x02, SrcPort: 41000, DstPort: 5201,
			Seq: seq, Ack: 0x1000, Window: 502, TCPOptions: ts, Flags: ot.ACK, Payload: payload(size)}
		ecn := false
		switch i {
		case 0:
			p.Flags |= ot.CWR | ot.ECE
			ecn = true
		case 2:
			p.Flags |= ot.PSH
		case 3:
			p.Flags |= ot.FIN | ot.PSH
		}
		add(fmt.Sprintf("TCPv4 #%d", i), p, 1448, ecn)
		seq += uint32(size)
	}
	add("TCPv6 with hop-by-hop", ot.Packet{Src: ot.V6A, Dst: ot.V6B, TOS: 0x01, FlowLabel: 0x12345, SrcPort: 41001, DstPort: 5201,
		Seq: 77, Ack: 88, TCPOptions: ts, Flags: ot.ACK | ot.PSH | ot.CWR,
		ExtHeaders: []ot.Ext{{Type: ot.ProtoHopByHop, Body: []byte{1, 4, 0, 0, 0, 0}}},
		Payload:    payload(40000)}, 1420, true)
	add("TCPv6", ot.Packet{Src: ot.V6A, Dst: ot.V6B, SrcPort: 41002, DstPort: 5201, Seq: 1, TCPOptions: ts,
		Flags: ot.ACK | ot.FIN, Payload: payload(65535 - 32)}, 1428, false)
	add("TCPv4 with IP options", ot.Packet{Src: ot.V4A, Dst: ot.V4C, ID: 7, SrcPort: 41003, DstPort: 80,
		IPOptions: []byte{0x94, 4, 0, 0}, Seq: 5, Flags: ot.ACK, Payload: payload(9000)}, 1000, false)
	add("TCPv4 802.1Q", ot.Packet{Src: ot.V4A, Dst: ot.V4B, VLANs: []uint16{42}, ID: 9, SrcPort: 41004, DstPort: 80,
		Seq: 5, Flags: ot.ACK | ot.PSH, Payload: payload(5000)}, 1400, false)
	add("USO IPv4", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, ID: 300, SrcPort: 4433, DstPort: 443, Payload: payload(1200*20 + 17)}, 1200, false)
	add("USO IPv6", ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4433, DstPort: 443, Payload: payload(1232 * 10)}, 1232, false)
	// gso_size 0: plain frames with a partial checksum, for csum.Complete.
	add("plain TCPv4 partial checksum", ot.Packet{Src: ot.V4A, Dst: ot.V4B, SrcPort: 41005, DstPort: 80, Seq: 9, Flags: ot.ACK | ot.PSH, Payload: payload(1001)}, 0, false)
	add("plain UDPv6 partial checksum", ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 53, DstPort: 5353, Payload: payload(777)}, 0, false)
	add("plain UDPv4 checksum summing to zero", zeroSumUDP(), 0, false)
	return s
}

func TestIntegrationKernelGSO(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	tx, rx := newNetns(t, "tx"), newNetns(t, "rx")
	run(t, "ip", "-n", tx, "link", "add", "a0", "address", net.HardwareAddr(ot.MACA[:]).String(), "type", "veth",
		"peer", "name", "b0", "address", net.HardwareAddr(ot.MACB[:]).String(), "netns", rx)
	// tx off turns TSO and USO off with it: the kernel segments in software.
	run(t, "ip", "netns", "exec", tx, "ethtool", "-K", "a0", "tx", "off", "gso", "on")
	run(t, "ip", "netns", "exec", rx, "ethtool", "-K", "b0", "gro", "off")
	run(t, "ip", "-n", tx, "link", "set", "a0", "up")
	run(t, "ip", "-n", rx, "link", "set", "b0", "up")

	sfd, err := packetSocket(tx, "a0", 0, true)
	if err != nil {
		t.Fatalf("sender socket: %v", err)
	}
	defer unix.Close(sfd)
	rfd, err := packetSocket(rx, "b0", unix.ETH_P_ALL, false)
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	defer unix.Close(rfd)

	out, sizes := batch(64, headroom+1600)
	rbuf := make([]byte, 70000)
	for _, c := range kernelStream() {
		t.Run(c.name, func(t *testing.T) {
			frame, h := ot.Super(c.p, c.gso, true, c.ecn)
			var n int
			if c.gso == 0 { // the kernel finishes the checksum: so must csum.Complete
				h.GSOType, h.GSOSize, h.HdrLen = offload.GSONone, 0, 0
				n, sizes[0] = 1, copy(out[0][headroom:], frame)
				f := out[0][headroom : headroom+len(frame)]
				if !csum.Complete(f, int(h.CsumStart), int(h.CsumOffset)) {
					t.Fatal("Complete refused the frame")
				}
				if field := binary.BigEndian.Uint16(f[h.CsumStart+h.CsumOffset:]); strings.Contains(c.name, "zero") && field != 0xffff {
					t.Fatalf("zero-sum datagram got checksum %#04x, want 0xffff", field)
				}
			} else {
				var d drop.Reason
				n, d = gso.Segment(frame, h, 1500, out, headroom, sizes)
				if d != drop.None {
					t.Fatalf("Segment dropped: %v", d)
				}
			}
			msg := make([]byte, offload.VnetHdrLen, offload.VnetHdrLen+len(frame))
			h.Put(msg)
			msg = append(msg, frame...)
			if _, err := unix.Write(sfd, msg); err != nil {
				if c.p.UDP && errors.Is(err, unix.EINVAL) {
					t.Skipf("this kernel refuses USO from a packet socket: %v", err)
				}
				t.Fatalf("inject super-frame: %v", err)
			}
			var got [][]byte
			for len(got) < n {
				f, err := capture(rfd, rbuf)
				if err != nil {
					t.Fatalf("captured %d of %d segments: %v", len(got), n, err)
				}
				if f != nil {
					got = append(got, f)
				}
			}
			for i := range n {
				mine := out[i][headroom : headroom+sizes[i]]
				if !bytes.Equal(mine, got[i]) {
					t.Errorf("segment %d of %d differs from the kernel's:\n%s", i, n, diffFields(mine, got[i]))
				}
			}
			// Nothing more may arrive for this super-frame.
			unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
			defer unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
			for {
				f, err := capture(rfd, rbuf)
				if err != nil {
					break
				}
				if f != nil {
					t.Errorf("the kernel sent more than %d segments", n)
				}
			}
			if !t.Failed() {
				t.Logf("%d segments identical to the kernel's", n)
			}
		})
	}
}

// capture reads one frame from the capture socket. It returns nil for a
// frame that is not from the sender (b0's own traffic). A VLAN tag the
// receive path moved into packet metadata (PACKET_AUXDATA) is put back
// into the frame where it was on the wire.
func capture(fd int, buf []byte) ([]byte, error) {
	oob := make([]byte, unix.CmsgSpace(20))
	n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return nil, err
	}
	ll, ok := from.(*unix.SockaddrLinklayer)
	if !ok || ll.Pkttype == unix.PACKET_OUTGOING || n < 14 || !bytes.Equal(buf[6:12], ot.MACA[:]) {
		return nil, nil
	}
	f := append([]byte(nil), buf[:n]...)
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		// struct tpacket_auxdata, include/uapi/linux/if_packet.h.
		status := binary.NativeEndian.Uint32(m.Data[0:])
		tci, tpid := binary.NativeEndian.Uint16(m.Data[16:]), binary.NativeEndian.Uint16(m.Data[18:])
		if status&unix.TP_STATUS_VLAN_VALID == 0 {
			continue
		}
		if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
			tpid = 0x8100
		}
		tag := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tpid), tci)
		f = append(f[:12], append(tag, f[12:]...)...)
	}
	return f, nil
}

// zeroSumUDP is a UDP datagram whose checksum computes to 0, which both
// the kernel and csum.Complete must send as 0xffff.
func zeroSumUDP() ot.Packet {
	p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 1000, DstPort: 2000, Payload: make([]byte, 2)}
	full := p.IP()
	c := binary.BigEndian.Uint16(full[26:])  // what the two zero bytes sum to makes this checksum
	binary.BigEndian.PutUint16(p.Payload, c) // adding c moves the sum to 0xffff
	return p
}

// diffFields describes how two segments differ, field by field.
func diffFields(mine, kernel []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  length: mine %d, kernel %d\n", len(mine), len(kernel))
	mi, e1 := ot.ParseFrame(mine)
	ki, e2 := ot.ParseFrame(kernel)
	fmt.Fprintf(&b, "  verify: mine %v, kernel %v\n", e1, e2)
	fmt.Fprintf(&b, "  seq:    mine %d, kernel %d\n", mi.Seq, ki.Seq)
	fmt.Fprintf(&b, "  flags:  mine %#02x, kernel %#02x\n", mi.Flags, ki.Flags)
	fmt.Fprintf(&b, "  ip id:  mine %d, kernel %d\n", mi.ID, ki.ID)
	fmt.Fprintf(&b, "  iplen:  mine %d, kernel %d; payload mine %d, kernel %d\n", mi.TotalLen, ki.TotalLen, mi.PayloadLen, ki.PayloadLen)
	for i := 0; i < min(len(mine), len(kernel)); i++ {
		if mine[i] != kernel[i] {
			fmt.Fprintf(&b, "  first differing byte at %d: mine %#02x, kernel %#02x", i, mine[i], kernel[i])
			if len(mine) >= 16 {
				fmt.Fprintf(&b, " (L4 checksum mine %#04x)", binary.BigEndian.Uint16(mine[len(mine)-len(mi.L4)+16:]))
			}
			break
		}
	}
	return b.String()
}

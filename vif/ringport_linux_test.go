package vif

// A ringPort is a PacketPort whose socket moves frames through memory it
// shares with the kernel instead of through recvmmsg and sendmmsg. It
// lives in a test file: BenchmarkReceive and BenchmarkTransmit measure it
// against PacketPort, and it did not earn a place in the product (doc.go
// says why). TestIntegrationRing holds it to the Port contract, so the
// numbers are those of a correct port.
//
//  1. Receive (PACKET_RX_RING, TPACKET_V3). The kernel fills fixed-size
//     blocks with variable-size frames, each behind a struct tpacket3_hdr,
//     and hands a block over (block_status TP_STATUS_USER) when it is full
//     or when the retire timer fires. ReadBatch walks the frames of the
//     handed-over block, copies each into the caller's buffer, and gives
//     the block back (TP_STATUS_KERNEL) after its last frame. It waits in
//     the netpoller only when the next block is still the kernel's.
//  2. Transmit (PACKET_TX_RING, TPACKET_V3 slots of one size). WriteBatch
//     copies each frame into the next free slot (TP_STATUS_AVAILABLE),
//     marks it TP_STATUS_SEND_REQUEST, and one send(2) at the end of the
//     batch makes the kernel send every requested slot. A frame larger
//     than a slot goes out by sendmmsg on a second socket that receives
//     nothing (every send on a socket with a TX ring sends from the
//     ring), after the ring is drained, so frames leave in the order
//     given.
//
// Both rings are one mapping; every length and offset read from it is
// checked against the block or slot before use (ringBlock, ringFrame).

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Ring geometry. A receive block must hold a 64 KiB virtio-net super-frame
// with its headers; a transmit slot holds one frame of the interface's
// MTU (larger frames take the sendmmsg path).
const (
	rxBlockSize = 128 << 10
	rxBlocks    = 16 // 2 MiB per socket
	// rxRetire is the block retire timeout in milliseconds: a block the
	// kernel has started filling is handed over at the latest this long
	// after, however few frames it holds. It is the latency a lone frame
	// pays on a quiet interface (1 is the smallest the kernel takes).
	rxRetire    = 1
	txBlockSize = 64 << 10
	txBlocks    = 16
)

// struct tpacket_block_desc (include/uapi/linux/if_packet.h) at the start
// of each receive block, with its struct tpacket_hdr_v1:
//
//	 0 version u32            4 offset_to_priv u32
//	 8 block_status u32      12 num_pkts u32
//	16 offset_to_first_pkt   20 blk_len u32 (end of the last frame)
//	24 seq_num u64           32 ts_first_pkt, 40 ts_last_pkt (2×u32 each)
const (
	blkStatus   = 8
	blkNumPkts  = 12
	blkFirstPkt = 16
	blkLen      = 20
	blkDescLen  = 48
)

// struct tpacket3_hdr (include/uapi/linux/if_packet.h), in front of every
// frame of both rings:
//
//	 0 tp_next_offset u32     4 tp_sec u32       8 tp_nsec u32
//	12 tp_snaplen u32        16 tp_len u32      20 tp_status u32
//	24 tp_mac u16            26 tp_net u16
//	28 hv1: tp_rxhash u32, 32 tp_vlan_tci u32, 36 tp_vlan_tpid u16, pad
//	40 tp_padding[8]
const (
	hdrNextOffset = 0
	hdrSnaplen    = 12
	hdrLen        = 16
	hdrStatus     = 20
	hdrMac        = 24
	hdrVLANTCI    = 32
	tpacket3Len   = unix.SizeofTpacket3Hdr // 48
	// txDataOff is where a transmit slot's frame starts: the kernel
	// takes TPACKET3_HDRLEN less struct sockaddr_ll (tpacket_snd).
	txDataOff = tpacket3Len
)

// ringPort is a PacketPort with an RX and a TX ring on its socket. It
// keeps the PacketPort's counters, Close and sendmmsg path (for frames
// too large for a transmit slot).
//
// Like every Port it is safe for one reader and one writer goroutine;
// Close may come from a third, and unmaps the rings only after both have
// left ReadBatch and WriteBatch.
type ringPort struct {
	*PacketPort
	// big sends frames larger than a slot; it receives nothing, and is
	// opened by the first such frame (its drop-all filter still costs
	// every received frame a little).
	big    atomic.Pointer[PacketPort]
	nsName string
	opt    PacketOptions
	vnet   int // VnetHdrLen with PACKET_VNET_HDR, else 0
	mem    []byte

	rx    []byte // rxBlocks blocks of rxBlockSize
	cur   int    // the block ReadBatch reads
	walk  bool   // cur is the user's and being walked
	left  int    // frames of cur not yet returned
	next  int    // offset of the next frame in cur
	end   int    // cur's blk_len
	ready func(fd uintptr) bool

	tx      []byte // txSlots slots of txSlot bytes
	txSlot  int
	txSlots int
	txRoom  int // the largest frame (with its virtio-net header) a slot takes
	head    int // the slot WriteBatch fills next
	kickFn  func(fd uintptr) bool
	kickErr unix.Errno

	// BadRing counts ring blocks or frames whose header did not fit the
	// block (a kernel bug, never seen): the rest of the block is skipped.
	BadRing atomic.Uint64

	busy atomic.Int32 // goroutines inside ReadBatch or WriteBatch
}

// openRing opens a PacketPort with opt and puts a TPACKET_V3 receive and
// transmit ring on its socket. Fanout (opt.Queues > 1) is not supported.
func openRing(name, nsName string, opt PacketOptions) (*ringPort, error) {
	if opt.Queues > 1 {
		return nil, fmt.Errorf("vif %s: ring ports have one queue", name)
	}
	p, err := OpenPacketWith(name, nsName, opt)
	if err != nil {
		return nil, err
	}
	r := &ringPort{PacketPort: p, nsName: nsName, opt: opt}
	if opt.VnetHdr {
		r.vnet = VnetHdrLen
	}
	if err := r.setup(nsName); err != nil {
		p.Close()
		return nil, fmt.Errorf("vif %s: %w", name, err)
	}
	r.ready = r.rxReady
	r.kickFn = r.kick
	return r, nil
}

func (r *ringPort) setup(nsName string) error {
	fd := r.fd()
	mtu, _, err := inNetns(nsName, func() (int, int, error) {
		ifi, err := net.InterfaceByIndex(r.ifindex)
		if err != nil {
			return 0, 0, err
		}
		return ifi.MTU, 0, nil
	})
	if err != nil {
		return err
	}
	// PACKET_VNET_HDR (set by OpenPacketWith) and the version must come
	// before the rings. PACKET_LOSS: a slot the kernel cannot parse is
	// skipped, not left blocking the transmit ring.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("PACKET_VERSION: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return fmt.Errorf("PACKET_LOSS: %w", err)
	}
	// For TPACKET_V3 receive the frame fields only have to be
	// consistent; the kernel packs frames of any size into a block.
	const rxFrame = 2048
	rxReq := unix.TpacketReq3{
		Block_size: rxBlockSize, Block_nr: rxBlocks,
		Frame_size: rxFrame, Frame_nr: rxBlocks * rxBlockSize / rxFrame,
		Retire_blk_tov: rxRetire,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &rxReq); err != nil {
		return fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	// A slot: header, virtio-net header, Ethernet header, one 802.1Q
	// tag (the kernel's limit: MTU + hard header + VLAN_HLEN), rounded
	// up to a power of two that divides the block.
	r.txRoom = r.vnet + mtu + 14 + 4
	r.txSlot = 2048
	for r.txSlot < txDataOff+r.txRoom {
		r.txSlot *= 2
	}
	if r.txSlot > txBlockSize {
		return fmt.Errorf("MTU %d too large for a %d-byte transmit block", mtu, txBlockSize)
	}
	r.txSlots = txBlocks * txBlockSize / r.txSlot
	txReq := unix.TpacketReq3{
		Block_size: txBlockSize, Block_nr: txBlocks,
		Frame_size: uint32(r.txSlot), Frame_nr: uint32(r.txSlots),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &txReq); err != nil {
		return fmt.Errorf("PACKET_TX_RING: %w", err)
	}
	rxSize, txSize := rxBlocks*rxBlockSize, txBlocks*txBlockSize
	mem, err := unix.Mmap(fd, 0, rxSize+txSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap rings: %w", err)
	}
	r.mem, r.rx, r.tx = mem, mem[:rxSize:rxSize], mem[rxSize:]
	// Frames that arrived between bind and the ring sit in the socket's
	// queue, which nothing reads once the ring is on: drop them.
	buf := make([]byte, 1)
	for {
		if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
			break
		}
	}
	return nil
}

// enter marks a goroutine inside the port; false once it is closed.
func (r *ringPort) enter() bool {
	r.busy.Add(1)
	if r.closed.Load() {
		r.busy.Add(-1)
		return false
	}
	return true
}

func (r *ringPort) leave() { r.busy.Add(-1) }

// Close closes the socket, which wakes a reader waiting in the
// netpoller, waits for reader and writer to leave, and unmaps the rings.
func (r *ringPort) Close() error {
	if r.closed.Load() {
		return nil
	}
	err := r.PacketPort.Close()
	if big := r.big.Swap(nil); big != nil {
		big.Close()
	}
	for r.busy.Load() != 0 {
		time.Sleep(100 * time.Microsecond)
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem, r.rx, r.tx = nil, nil, nil
	}
	return err
}

// Queues returns the port itself, its only queue.
func (r *ringPort) Queues() []Port { return []Port{r} }

// ringBlock is a view of one receive block.
type ringBlock []byte

func (b ringBlock) block(i int) ringBlock { return b[i*rxBlockSize : (i+1)*rxBlockSize] }

// ReadBatch returns frames from the receive ring (Port.ReadBatch).
func (r *ringPort) ReadBatch(bufs [][]byte, sizes []int, meta []Meta, offset int) (int, error) {
	if !r.enter() {
		return 0, ErrClosed
	}
	defer r.leave()
	n := min(len(bufs), len(sizes), len(meta), MaxBatch)
	for {
		if got := r.fill(bufs[:n], sizes, meta, offset); got > 0 {
			return got, nil
		}
		if err := r.rc.Read(r.ready); err != nil {
			return 0, r.mapErr(err)
		}
	}
}

// rxReady is the netpoller's test: the block to read is the user's.
func (r *ringPort) rxReady(uintptr) bool {
	return r.walk || loadStatus(r.rx, r.cur*rxBlockSize+blkStatus)&unix.TP_STATUS_USER != 0
}

// fill copies up to len(bufs) frames out of handed-over blocks and
// returns how many.
func (r *ringPort) fill(bufs [][]byte, sizes []int, meta []Meta, offset int) int {
	got := 0
	for got < len(bufs) {
		blk := ringBlock(r.rx).block(r.cur)
		if !r.walk {
			if loadStatus(blk, blkStatus)&unix.TP_STATUS_USER == 0 {
				break
			}
			num := binary.NativeEndian.Uint32(blk[blkNumPkts:])
			first := binary.NativeEndian.Uint32(blk[blkFirstPkt:])
			end := binary.NativeEndian.Uint32(blk[blkLen:])
			if end > rxBlockSize || num > 0 && (first < blkDescLen || first > end) {
				r.BadRing.Add(1)
				r.release()
				continue
			}
			r.walk, r.left, r.next, r.end = true, int(num), int(first), int(end)
		}
		if r.left == 0 {
			r.release()
			continue
		}
		f, ok := ringFrame(blk[r.next:r.end]).check(r.vnet)
		if !ok {
			r.BadRing.Add(1)
			r.release()
			continue
		}
		room := bufs[got][offset:]
		if f.snap < f.len || len(f.data) > len(room) {
			r.Truncated.Add(1)
			sizes[got] = 0
		} else {
			sizes[got] = copy(room, f.data)
		}
		meta[got] = f.meta
		got++
		r.left--
		if r.left > 0 {
			if f.nextOff < tpacket3Len || f.nextOff > r.end-r.next {
				r.BadRing.Add(1)
				r.release()
				continue
			}
			r.next += f.nextOff
		}
	}
	return got
}

// release gives the current block back to the kernel and moves on.
func (r *ringPort) release() {
	storeStatus(r.rx, r.cur*rxBlockSize+blkStatus, unix.TP_STATUS_KERNEL)
	r.walk = false
	r.cur = (r.cur + 1) % rxBlocks
}

// ringFrame is a view of a receive frame's tpacket3_hdr and what follows
// it up to the block's end.
type ringFrame []byte

type checkedFrame struct {
	data      []byte // virtio-net header (if any) and frame, in the ring
	snap, len int    // bytes captured, bytes the frame had
	nextOff   int
	meta      Meta
}

// check reads the header, verifying that it and the frame with vnet bytes
// of virtio-net header before it lie inside f.
func (f ringFrame) check(vnet int) (checkedFrame, bool) {
	if len(f) < tpacket3Len {
		return checkedFrame{}, false
	}
	snap := int(binary.NativeEndian.Uint32(f[hdrSnaplen:]))
	mac := int(binary.NativeEndian.Uint16(f[hdrMac:]))
	if mac < tpacket3Len+vnet || snap > len(f)-mac {
		return checkedFrame{}, false
	}
	c := checkedFrame{
		data:    f[mac-vnet : mac+snap],
		snap:    snap,
		len:     int(binary.NativeEndian.Uint32(f[hdrLen:])),
		nextOff: int(binary.NativeEndian.Uint32(f[hdrNextOffset:])),
	}
	if binary.NativeEndian.Uint32(f[hdrStatus:])&unix.TP_STATUS_VLAN_VALID != 0 {
		c.meta = Meta{VLAN: uint16(binary.NativeEndian.Uint32(f[hdrVLANTCI:])) & 0x0fff, Tagged: true}
	}
	return c, true
}

// slotBusy: the kernel has not given the slot back yet.
const slotBusy = unix.TP_STATUS_SEND_REQUEST | unix.TP_STATUS_SENDING | unix.TP_STATUS_WRONG_FORMAT

// WriteBatch sends frames through the transmit ring (Port.WriteBatch).
// Frames larger than a slot go out by sendmmsg, after the ring ahead of
// them is sent.
func (r *ringPort) WriteBatch(frames [][]byte) (int, error) {
	if !r.enter() {
		return 0, ErrClosed
	}
	defer r.leave()
	queued := 0
	for i := 0; i < len(frames); {
		if len(frames[i]) > r.txRoom {
			if err := r.flush(queued); err != nil {
				return i - queued, err
			}
			queued = 0
			j := i + 1
			for j < len(frames) && len(frames[j]) > r.txRoom {
				j++
			}
			big := r.big.Load()
			if big == nil {
				var err error
				if big, err = openSocket(r.name, r.nsName, r.opt, true); err != nil {
					return i, err
				}
				r.big.Store(big)
				if r.closed.Load() {
					// Close may have missed it.
					big.Close()
					return i, ErrClosed
				}
			}
			n, err := big.WriteBatch(frames[i:j])
			if err != nil {
				return i + n, err
			}
			i = j
			continue
		}
		slot := r.tx[r.head*r.txSlot : (r.head+1)*r.txSlot]
		if loadStatus(slot, hdrStatus)&slotBusy != 0 {
			if err := r.flush(queued); err != nil {
				return i - queued, err
			}
			queued = 0
			if err := r.waitSlot(slot); err != nil {
				return i, err
			}
		}
		f := frames[i]
		copy(slot[txDataOff:], f)
		binary.NativeEndian.PutUint32(slot[hdrNextOffset:], 0)
		binary.NativeEndian.PutUint32(slot[hdrLen:], uint32(len(f)))
		binary.NativeEndian.PutUint32(slot[hdrSnaplen:], uint32(len(f)))
		storeStatus(slot, hdrStatus, unix.TP_STATUS_SEND_REQUEST)
		r.head = (r.head + 1) % r.txSlots
		queued++
		i++
	}
	if err := r.flush(queued); err != nil {
		return len(frames) - queued, err
	}
	return len(frames), nil
}

// waitSlot waits until the kernel has given slot back (its frame left the
// device). Only a transmit ring longer than the device queue fills: the
// wait is short, and slots are polled rather than waited for in the
// netpoller, whose POLLOUT for a ring looks at the kernel's next slot to
// send, not at this one.
func (r *ringPort) waitSlot(slot []byte) error {
	for loadStatus(slot, hdrStatus)&slotBusy != 0 {
		if r.closed.Load() {
			return ErrClosed
		}
		time.Sleep(20 * time.Microsecond)
	}
	return nil
}

// flush makes the kernel send the queued slots (the last queued ones
// before head).
func (r *ringPort) flush(queued int) error {
	if queued == 0 {
		return nil
	}
	last := (r.head - 1 + r.txSlots) % r.txSlots
	lastSlot := r.tx[last*r.txSlot : (last+1)*r.txSlot]
	downs := 0
	for loadStatus(lastSlot, hdrStatus)&unix.TP_STATUS_SEND_REQUEST != 0 {
		r.kickErr = 0
		if err := r.rc.Write(r.kickFn); err != nil {
			return r.mapErr(err)
		}
		switch r.kickErr {
		case 0:
		case unix.EAGAIN:
			// The socket's send buffer is full of frames in flight.
			if r.closed.Load() {
				return ErrClosed
			}
			time.Sleep(20 * time.Microsecond)
		case unix.ENOBUFS, unix.EMSGSIZE:
			// The device refused the slot the kernel is at, which it
			// leaves requested and would retry on every send: drop it,
			// as PacketPort drops a frame sendmmsg cannot send. A slot
			// shorter than an Ethernet header is invalid, and with
			// PACKET_LOSS the kernel skips invalid slots. No kernel
			// path reads the ring outside send(2), so rewriting a
			// requested slot here is safe.
			if s := r.firstRequested(queued); s != nil {
				binary.NativeEndian.PutUint32(s[hdrLen:], 0)
				r.TxDropped.Add(1)
			}
		case unix.ENETDOWN, unix.ENXIO:
			// A link that went down leaves ENETDOWN as the socket's
			// error, which the next send reports once, sending
			// nothing: try again. A second time the link is down (or
			// the device gone): drop every queued slot and take the
			// ring's head back to the first, where the kernel will
			// look next.
			if downs++; downs < 2 {
				continue
			}
			r.dropQueued()
			return nil
		default:
			return r.mapErr(r.kickErr)
		}
	}
	return nil
}

// firstRequested is the oldest of the last queued slots still requested:
// the one the kernel stopped at.
func (r *ringPort) firstRequested(queued int) []byte {
	for k := queued; k > 0; k-- {
		i := (r.head - k + r.txSlots) % r.txSlots
		slot := r.tx[i*r.txSlot : (i+1)*r.txSlot]
		if loadStatus(slot, hdrStatus)&unix.TP_STATUS_SEND_REQUEST != 0 {
			return slot
		}
	}
	return nil
}

// kick is send(2) with no data: it makes the kernel send every slot from
// its position that says TP_STATUS_SEND_REQUEST.
func (r *ringPort) kick(fd uintptr) bool {
	_, _, r.kickErr = unix.Syscall6(unix.SYS_SENDTO, fd, 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return true
}

// dropQueued takes back the slots still requested for sending, from the
// newest, counting each as dropped.
func (r *ringPort) dropQueued() {
	for {
		prev := (r.head - 1 + r.txSlots) % r.txSlots
		slot := r.tx[prev*r.txSlot : (prev+1)*r.txSlot]
		if loadStatus(slot, hdrStatus)&unix.TP_STATUS_SEND_REQUEST == 0 {
			return
		}
		storeStatus(slot, hdrStatus, unix.TP_STATUS_AVAILABLE)
		r.TxDropped.Add(1)
		r.head = prev
	}
}

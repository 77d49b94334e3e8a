package datapath

import (
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"sync"
	"time"

	"github.com/vifsec/vifsec/vif"
)

// Frames toward a remote VTEP whose underlay next-hop MAC is not known yet
// wait for it, as the kernel's neighbour queue holds packets while it
// resolves a next hop, instead of being lost: a guest's first frames over
// a fresh underlay (its own ARP or Neighbor Solicitation, usually) must not
// vanish while the host resolves the VTEP.
//
//  1. Miss: vxlanOut finds no MAC for the remote. The frame is complete
//     (the VM's ESP, VXLAN, the underlay's ESP) but for the outer
//     destination MAC; it is copied into a free slot of the engine's hold,
//     and the remote is reported on NeighborMisses.
//  2. Bounds: at most holdPerKey frames per (VNI, remote), the oldest
//     going first, and holdSlots in all; when every slot is taken, the
//     oldest frame of the (VNI, remote) holding the most goes, so one
//     tenant's burst toward an unresolved VTEP cannot push out another's
//     first frames. Frames longer than a slot are dropped.
//  3. Resolve: SetNeighbors sends the held frames of every remote it
//     knows, oldest first, and only then publishes the new table; a miss
//     looks at the table again under the same lock, so no frame is left
//     behind and none overtakes a held one.
//  4. Expire: a frame held longer than NeighborHoldTime is dropped
//     instead of sent.
//
// Every drop counts as OverlayStats.NoNeighbor. The slots are allocated
// once, at the first miss; holding and sending allocate nothing.
const (
	// NeighborHoldTime is how long a frame waits for its remote VTEP's
	// MAC (Linux gives up on a next hop after 3 probes a second apart).
	NeighborHoldTime = 3 * time.Second
	holdSlots        = 64
	holdPerKey       = 8
	// holdSlotSize is a slot: a virtio-net header's room, then the frame
	// (a 1500-byte MTU packet in VXLAN in ESP fits with room to spare).
	holdSlotSize = bufSize
)

// SetNeighbors sends every frame the hold has for a remote in one
// WriteBatch.
var _ [vif.MaxBatch - holdSlots]struct{}

// vtepHold holds frames waiting for their remote VTEP's MAC.
type vtepHold struct {
	mu    sync.Mutex
	slots []heldFrame // nil until the first miss
	seq   uint64      // order of arrival
	// frames and order are SetNeighbors' scratch.
	frames [][]byte
	order  []int
}

type heldFrame struct {
	used   bool
	key    underlayKey
	seq    uint64
	at     time.Time
	n      int // frame length, after the vif.VnetHdrLen bytes of room
	buf    []byte
	remote netip.Addr
}

// hold takes the frame buf[start:end] toward remote (its outer destination
// MAC still to write), or reports the MAC when it became known meanwhile:
// then the caller sends the frame itself.
func (e *Engine) hold(vni uint32, remote netip.Addr, buf []byte, start, end int) (header.MAC, bool) {
	h := &e.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if mac, ok := e.neighbor(remote); ok {
		return mac, true
	}
	select {
	case e.misses <- remote:
	default:
	}
	n := end - start
	if n > holdSlotSize-vif.VnetHdrLen {
		e.OverlayStats.NoNeighbor.Add(1)
		return header.MAC{}, false
	}
	if h.slots == nil {
		h.slots = make([]heldFrame, holdSlots)
		for i := range h.slots {
			h.slots[i].buf = make([]byte, holdSlotSize)
		}
		h.frames = make([][]byte, 0, holdSlots)
		h.order = make([]int, 0, holdSlots)
	}
	now := e.now()
	k := underlayKey{vni, remote}
	free, mine, oldest := -1, 0, -1
	for i := range h.slots {
		f := &h.slots[i]
		if f.used && now.Sub(f.at) > NeighborHoldTime {
			f.used = false
			e.OverlayStats.NoNeighbor.Add(1)
		}
		switch {
		case !f.used:
			if free < 0 {
				free = i
			}
		case f.key == k:
			mine++
			if oldest < 0 || f.seq < h.slots[oldest].seq {
				oldest = i
			}
		}
	}
	slot := free
	if mine >= holdPerKey {
		slot = oldest
	} else if free < 0 {
		slot = h.oldestOfLargest()
	}
	if h.slots[slot].used {
		e.OverlayStats.NoNeighbor.Add(1)
	}
	h.seq++
	f := &h.slots[slot]
	*f = heldFrame{used: true, key: k, seq: h.seq, at: now, n: n, buf: f.buf, remote: remote}
	clear(f.buf[:vif.VnetHdrLen])
	copy(f.buf[vif.VnetHdrLen:], buf[start:end])
	return header.MAC{}, false
}

func (h *vtepHold) count(k underlayKey) int {
	c := 0
	for i := range h.slots {
		if h.slots[i].used && h.slots[i].key == k {
			c++
		}
	}
	return c
}

// oldestOfLargest is the oldest frame of the key holding the most frames
// (all slots taken).
func (h *vtepHold) oldestOfLargest() int {
	best, bestCount := 0, -1
	for i := range h.slots {
		c := h.count(h.slots[i].key)
		if c > bestCount || c == bestCount && h.slots[i].key == h.slots[best].key && h.slots[i].seq < h.slots[best].seq {
			best, bestCount = i, c
		}
	}
	return best
}

// sendHeldLocked sends, oldest first, the held frames whose remote m
// names, and drops those held too long. The caller holds e.held.mu.
func (e *Engine) sendHeldLocked(m map[netip.Addr]header.MAC) {
	h := &e.held
	if h.slots == nil {
		return
	}
	now := e.now()
	h.order = h.order[:0]
	for i := range h.slots {
		f := &h.slots[i]
		if !f.used {
			continue
		}
		if now.Sub(f.at) > NeighborHoldTime {
			f.used = false
			e.OverlayStats.NoNeighbor.Add(1)
			continue
		}
		if _, ok := m[f.remote]; !ok {
			continue
		}
		// Insertion by arrival: holdSlots is small.
		j := len(h.order)
		h.order = append(h.order, i)
		for j > 0 && h.slots[h.order[j-1]].seq > f.seq {
			h.order[j] = h.order[j-1]
			j--
		}
		h.order[j] = i
	}
	if len(h.order) == 0 {
		return
	}
	cfg := e.cfg.Load()
	up := cfg.uplink
	h.frames = h.frames[:0]
	for _, i := range h.order {
		f := &h.slots[i]
		f.used = false
		if up == nil || cfg.overlay == nil {
			e.OverlayStats.NoNeighbor.Add(1)
			continue
		}
		mac := m[f.remote]
		fr := f.buf[:vif.VnetHdrLen+f.n]
		copy(fr[vif.VnetHdrLen:], mac[:])
		if !up.vnet {
			fr = fr[vif.VnetHdrLen:]
		}
		h.frames = append(h.frames, fr)
	}
	if len(h.frames) > 0 {
		up.write(h.frames)
	}
	clear(h.frames)
	h.frames = h.frames[:0]
}

// neighbor is the published MAC of remote.
func (e *Engine) neighbor(remote netip.Addr) (header.MAC, bool) {
	mac, ok := e.cfg.Load().neigh[remote]
	return mac, ok
}

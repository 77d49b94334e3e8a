package datapath

import (
	"github.com/vifsec/vifsec/offload/gro"
	"github.com/vifsec/vifsec/vif"
)

// Ingress coalescing toward VMs whose VIF takes virtio-net headers
// (offload/gro): an uplink worker merges consecutive TCP segments of one
// flow for one VM, within one batch, into a super-frame. A run ends with
// the batch, with a frame for another VM or one gro will not merge, and
// before a super-frame the uplink's own GRO built goes to the VM, so a
// VM's frames keep their order.

// coalesce delivers the frame buf[start:end] to vm, merging it into the
// pending run when it can.
func (w *worker) coalesce(vm *vmState, buf []byte, start, end int) {
	frame := buf[start:end]
	seg, ok := gro.Eligible(frame)
	if !ok {
		w.flushRun()
		w.queue(vm.port, buf, start, end, vm.stats)
		return
	}
	if w.coVM == vm && w.co.Append(frame, seg) {
		return
	}
	w.flushRun()
	if !w.co.Start(frame, seg) {
		w.queue(vm.port, buf, start, end, vm.stats)
		return
	}
	w.coVM = vm
}

// flushRun sends the pending run: as it is when it holds one segment,
// otherwise as one super-frame with its virtio-net header.
func (w *worker) flushRun() {
	w.cryptFlush() // what the crypto run holds came first
	vm := w.coVM
	if vm == nil {
		return
	}
	w.coVM = nil
	buf, start, end, h, ok := w.co.Finish()
	if !ok {
		return
	}
	merged := h.GSOType != 0
	if merged {
		h.Put(buf[start-vif.VnetHdrLen:])
	}
	if w.nout == maxOut {
		w.flush()
	}
	w.out[w.nout] = outFrame{dst: vm.port, buf: buf, start: start, end: end, vm: vm.stats, hasHdr: merged}
	w.nout++
	// The run's buffer is reused by the next run: send now.
	w.flush()
}

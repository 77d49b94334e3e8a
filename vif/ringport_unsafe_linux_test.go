package vif

import (
	"sync/atomic"
	"unsafe"
)

// loadStatus and storeStatus move a ring status word (tpacket_hdr_v1's
// block_status, tpacket3_hdr's tp_status) between the kernel and vifsec:
// the status word is the handoff, so it is read and written atomically,
// and the frame bytes behind it are read only after the load saw the
// word say so (and written only before the store hands them over).
//
// b[off:off+4] must be in bounds and 4-byte aligned; every caller passes
// a constant offset into a ring block or slot, which are page- and
// 16-byte aligned.
func loadStatus(b []byte, off int) uint32 {
	_ = b[off+3]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off])))
}

func storeStatus(b []byte, off int, v uint32) {
	_ = b[off+3]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off])), v)
}

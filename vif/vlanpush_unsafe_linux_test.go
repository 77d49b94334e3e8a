package vif

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vlanPushOnEgress makes every frame dev sends carry an 802.1Q tag tci
// in skb metadata (a "hardware-accelerated" tag, skb->vlan_tci), as a
// VLAN device or a VLAN-filtering bridge would put it; neither exists in
// the kernels vifsec is tested on. It attaches, in clsact egress, a tc
// program that calls bpf_skb_vlan_push(skb, ETH_P_8021Q, tci). Frames
// sent with PACKET_QDISC_BYPASS skip it.
func vlanPushOnEgress(t testing.TB, nsName, dev string, tci uint16) {
	t.Helper()
	const (
		bpfProgLoad     = 5  // enum bpf_cmd BPF_PROG_LOAD
		progSchedCls    = 3  // enum bpf_prog_type BPF_PROG_TYPE_SCHED_CLS
		funcSkbVLANPush = 18 // enum bpf_func_id BPF_FUNC_skb_vlan_push
	)
	// struct bpf_insn: code u8, dst_reg:4 src_reg:4, off s16, imm s32.
	insn := func(code, dst uint8, imm int32) uint64 {
		return uint64(code) | uint64(dst)<<8 | uint64(uint32(imm))<<32
	}
	insns := []uint64{
		insn(0xb7, 2, int32(htons(unix.ETH_P_8021Q))), // r2 = htons(ETH_P_8021Q); r1 is the skb
		insn(0xb7, 3, int32(tci)),                     // r3 = tci
		insn(0x85, 0, funcSkbVLANPush),                // call bpf_skb_vlan_push
		insn(0xb7, 0, 0),                              // r0 = TC_ACT_OK
		insn(0x95, 0, 0),                              // exit
	}
	license := []byte("GPL\x00")
	log := make([]byte, 4096)
	attr := bpfProgLoadAttr{
		progType: progSchedCls,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1,
		logSize:  uint32(len(log)),
		logBuf:   uint64(uintptr(unsafe.Pointer(&log[0]))),
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgLoad, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	if errno != 0 {
		t.Fatalf("BPF_PROG_LOAD vlan push: %v\n%s", errno, log)
	}
	defer unix.Close(int(fd))

	ns, err := netns.GetFromName(nsName)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	err = h.QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}})
	if err != nil {
		t.Fatalf("clsact on %s: %v", dev, err)
	}
	err = h.FilterAdd(&netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_EGRESS,
			Handle: netlink.MakeHandle(0, 1), Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd: int(fd), Name: fmt.Sprintf("vlan_push_%d", tci), DirectAction: true,
	})
	if err != nil {
		t.Fatalf("tc egress bpf on %s: %v", dev, err)
	}
}

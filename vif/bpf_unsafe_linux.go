package vif

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpfProgLoadAttr is the BPF_PROG_LOAD member of union bpf_attr
// (include/uapi/linux/bpf.h) up to expected_attach_type; the kernel
// takes a shorter attr as if the rest were zero.
type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// loadVerdictProg loads a BPF_PROG_TYPE_SCHED_CLS program of two
// instructions that returns verdict for every packet, named name, and
// returns its file descriptor. As a cls_bpf filter in direct-action mode
// it is "match everything, then verdict": what act_gact would do, on
// kernels built without it.
func loadVerdictProg(name string, verdict int32) (int, error) {
	// struct bpf_insn (include/uapi/linux/bpf.h): code, dst_reg:4 and
	// src_reg:4, off, imm. r0 = verdict; exit.
	var insns [2 * 8]byte
	insns[0] = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
	binary.NativeEndian.PutUint32(insns[4:8], uint32(verdict))
	insns[8] = unix.BPF_JMP | unix.BPF_EXIT
	license := []byte("GPL\x00") // no helper is called: any string would do
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_SCHED_CLS,
		insnCnt:  2,
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:len(attr.progName)-1], name)
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		return -1, fmt.Errorf("BPF_PROG_LOAD: %w", errno)
	}
	return int(fd), nil
}

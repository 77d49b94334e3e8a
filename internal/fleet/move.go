package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/etcd"
)

// MoveVM implements api.Fleet: one transaction deletes the VM binding, its
// SAs and its SPs from host from ("" is this host) and puts them on host
// to, if neither host's state (nor the fleet's) changed meanwhile; the
// source detaches the VM and the destination attaches it as their watches
// deliver the change (a live migration's order: detach on A, attach on
// B). req.Dev and req.Netns, if set, give the VM's interface on the
// destination. The destination's rules are checked first (its names, SPIs and
// (vlan, mac) must not collide). Each moved SA's sequence reservation
// (store.KindSeq) moves in the same transaction, on condition that the
// source did not renew it since it was read: the source can no longer
// extend it and stops at its limit, the destination continues above it, so
// no (SPI, sequence number) is sent twice and the peer sees no replays,
// whichever host runs the move. An SA without a reservation moves, and
// refuses to send there until re-keyed (warned).
func (f *Fleet) MoveVM(ctx context.Context, from, vm string, req api.MoveRequest) ([]string, error) {
	to := req.ToHost
	if from == "" {
		from = f.cfg.Host
	}
	if from == to {
		return nil, &api.Error{Status: 400, Code: "invalid", Message: fmt.Sprintf("--to-host %s: VM %s is already on host %s", to, vm, from)}
	}
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	var lastErr error
	for range 5 {
		ws, err := f.moveOnce(ctx, from, vm, req)
		if !errors.Is(err, etcd.ErrConflict) {
			return ws, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func (f *Fleet) moveOnce(ctx context.Context, from, vm string, req api.MoveRequest) ([]string, error) {
	to := req.ToHost
	src, err := f.cfg.Cluster.Host(from)
	if err != nil {
		return nil, &api.Error{Status: 400, Code: "invalid", Message: "--host: " + err.Error()}
	}
	dst, err := f.cfg.Cluster.Host(to)
	if err != nil {
		return nil, &api.Error{Status: 400, Code: "invalid", Message: "--to-host: " + err.Error()}
	}
	srcRecs, err := src.Load()
	if err != nil {
		return nil, err
	}
	moved, err := daemon.VMRecords(srcRecs, vm)
	if err != nil {
		return nil, err
	}
	if req.Dev != "" || req.Netns != "" {
		for i, r := range moved {
			if r.Kind == store.KindVM {
				v, err := daemon.WithDevice(r.Value, req.Dev, req.Netns)
				if err != nil {
					return nil, err
				}
				moved[i].Value = v
			}
		}
	}
	dstRecs, err := dst.Load()
	if err != nil {
		return nil, err
	}
	// The destination's names must be free.
	have := map[string]bool{}
	for _, r := range dstRecs {
		have[string(r.Kind)+"/"+r.Name] = true
	}
	var taken []string
	for _, r := range moved {
		if have[string(r.Kind)+"/"+r.Name] {
			taken = append(taken, fmt.Sprintf("%s %s", r.Kind, r.Name))
		}
	}
	if len(taken) > 0 {
		return nil, &api.Error{Status: 409, Code: daemon.CodeExists.String(), Message: fmt.Sprintf(
			"--to-host %s: host %s already has %s; names of VMs, SAs and SPs are unique per host", to, to, strings.Join(taken, ", "))}
	}
	// And everything must still hold there.
	probs, err := daemon.CheckRecords(append(append([]store.Record(nil), dstRecs...), moved...))
	if err != nil {
		return nil, err
	}
	isMoved := map[string]bool{}
	for _, r := range moved {
		isMoved[string(r.Kind)+"/"+r.Name] = true
	}
	var bad []string
	for _, p := range probs {
		if isMoved[string(p.Kind)+"/"+p.Name] {
			bad = append(bad, p.String())
		}
	}
	if len(bad) > 0 {
		return nil, &api.Error{Status: 409, Code: daemon.CodeExists.String(), Message: fmt.Sprintf(
			"--to-host %s: VM %s cannot move there: %s", to, vm, strings.Join(bad, "; "))}
	}

	seqs, err := src.LoadSeqs()
	if err != nil {
		return nil, err
	}
	seqOf := map[string][]byte{}
	for _, r := range seqs {
		seqOf[r.Name] = r.Value
	}
	var warnings []string
	var del, put []store.Op
	carried := 0
	for _, r := range moved {
		del = append(del, store.Delete(r.Kind, r.Name))
		put = append(put, store.Put(r.Kind, r.Name, r.Value))
		if r.Kind != store.KindSA {
			continue
		}
		// Deleted at the source in any case: nothing may extend it there.
		del = append(del, store.Delete(store.KindSeq, r.Name))
		if v, ok := seqOf[r.Name]; ok && v != nil {
			put = append(put, store.Put(store.KindSeq, r.Name, v))
			carried++
		} else {
			warnings = append(warnings, fmt.Sprintf("SA %s has no readable sequence reservation on host %s: it refuses to send on host %s until re-keyed (replace it with an SA with a new key)", r.Name, from, to))
		}
	}
	if err := f.cfg.Cluster.Move(ctx, src, del, dst, put); err != nil {
		return nil, err
	}
	f.log.Info("vm moved", "vm", vm, "from", from, "to", to, "records", len(moved), "sa_reservations_carried", carried)
	return warnings, nil
}

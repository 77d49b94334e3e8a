package ikeio

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/ikectl"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/vif"
)

// Glue carries IKE datagrams between the engine (internal/ikectl) and
// the network:
//
//  1. Policies with --vm: the data path punts IKE addressed to the VM
//     (datapath.Engine.SetIKEHandler) and sends on its behalf (SendIKE).
//  2. Policies without --vm: UDP sockets on the uplink's underlay address
//     (--vxlan-local), ports 500 and 4500, in the uplink's namespace;
//     datagrams on 4500 carry the 4-byte non-ESP marker (RFC 3948 §2.2),
//     added and stripped here. They are open only while such a policy
//     exists.
//  3. Received datagrams go through one bounded queue to one goroutine
//     that runs the engine (DH and signatures never run on the data
//     path's uplink worker).
type Glue struct {
	d   *daemon.Daemon
	log *slog.Logger
	ctl *ikectl.Controller
	dp  atomic.Pointer[datapath.Engine]
	in  chan ike.Packet

	dropped atomic.Uint64 // received datagrams dropped: the queue was full

	mu    sync.Mutex
	under *underlaySockets // nil: none open
	want  underlayAt       // where they should be; zero: nowhere
}

// ikeQueue bounds received datagrams waiting for the engine: a flood of
// IKE_SA_INIT is dropped here rather than queued without end (the engine
// answers floods with cookies once half-open SAs pile up).
const ikeQueue = 256

// ikeRetry is how often the underlay sockets are checked again: opening
// them (the address may not be configured yet), closing them once the
// last underlay IKE SA is gone.
const ikeRetry = 5 * time.Second

// nonESPMarker is the marker IKE carries on port 4500 (RFC 3948 §2.2).
var nonESPMarker = [4]byte{}

type underlayAt struct {
	netns string
	addr  netip.Addr
}

type underlaySockets struct {
	at          underlayAt
	c500, c4500 net.PacketConn
}

// New makes the glue of d's IKE engine; tune, if not nil, tunes the
// engine (retransmission, half-open limits). Run runs it.
func New(d *daemon.Daemon, log *slog.Logger, tune *ike.Config) *Glue {
	g := &Glue{d: d, log: log, in: make(chan ike.Packet, ikeQueue)}
	g.ctl = ikectl.New(d, &ikectl.Config{Logger: log, Send: g.send, Engine: tune})
	return g
}

// AttachDataPath is called by runDataPath with its engine: IKE for VMs
// with --vm policies is punted to the queue.
func (g *Glue) AttachDataPath(e *datapath.Engine) {
	g.dp.Store(e)
	e.SetIKEHandler(func(p datapath.IKEPacket) {
		g.enqueue(ike.Packet{Local: p.Local, Remote: p.Remote, Scope: p.Scope, Data: p.Data})
	})
}

func (g *Glue) enqueue(p ike.Packet) {
	g.log.Debug("IKE datagram received", "scope", p.Scope.String(), "local", p.Local, "remote", p.Remote, "bytes", len(p.Data))
	select {
	case g.in <- p:
	default:
		if n := g.dropped.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8, …
			g.log.Warn("IKE input queue full: datagrams dropped", "dropped", n)
		}
	}
}

// A datagram that cannot go yet, because the data path does not know the
// VM yet or the underlay sockets are not open yet, is tried
// again after ikeResendFirst, then after twice as long each time up to
// ikeResendLast (ikeResendAfter in all): the engine initiates as soon as a
// policy is created or its VM arrives (a move), the data path (or Run, for
// the sockets) takes the new state a moment later, usually within a few
// milliseconds, and the engine's own retransmission comes only seconds
// after.
const (
	ikeResendFirst = 5 * time.Millisecond
	ikeResendLast  = 160 * time.Millisecond
	ikeResendAfter = 2*ikeResendLast - ikeResendFirst // 315 ms
)

// send is the engine's Send.
func (g *Glue) send(p ike.Packet) { g.sendTry(p, ikeResendFirst) }

// resend tries p again after wait, then after twice as long each time, up
// to ikeResendLast.
func (g *Glue) resend(p ike.Packet, wait time.Duration) {
	p.Data = slices.Clone(p.Data)
	next := 2 * wait
	if next > ikeResendLast {
		next = 0
	}
	time.AfterFunc(wait, func() { g.sendTry(p, next) })
}

// sendTry sends p; if it cannot go yet and retry is not 0, it is tried
// again after retry.
func (g *Glue) sendTry(p ike.Packet, retry time.Duration) {
	if p.Scope != (sa.Scope{}) {
		dp := g.dp.Load()
		if dp == nil {
			return
		}
		err := dp.SendIKE(datapath.IKEPacket{Scope: p.Scope, Local: p.Local, Remote: p.Remote, Data: p.Data})
		if retry > 0 && errors.Is(err, datapath.ErrNoVM) {
			g.resend(p, retry)
			return
		}
		if err != nil {
			lv := slog.LevelWarn
			if errors.Is(err, datapath.ErrNoNeighbor) || errors.Is(err, datapath.ErrNoUplink) {
				// The engine retransmits: the peer's address resolves, the
				// uplink comes.
				lv = slog.LevelDebug
			}
			g.log.Log(context.Background(), lv, "IKE datagram for a VM not sent", "scope", p.Scope.String(), "remote", p.Remote, "err", err)
		}
		return
	}
	g.mu.Lock()
	u := g.under
	g.mu.Unlock()
	if u == nil || p.Local.Addr().Unmap() != u.at.addr.Unmap() {
		if retry > 0 {
			g.resend(p, retry)
			return
		}
		g.log.Debug("IKE datagram from an underlay address not open", "local", p.Local, "remote", p.Remote)
		return
	}
	c, data := u.c500, p.Data
	if p.Local.Port() == esp4500 {
		c, data = u.c4500, append(nonESPMarker[:], p.Data...)
	}
	if _, err := c.WriteTo(data, net.UDPAddrFromAddrPort(p.Remote)); err != nil {
		g.log.Warn("IKE datagram not sent", "local", p.Local, "remote", p.Remote, "err", err)
	}
}

const (
	ike500  = 500
	esp4500 = 4500
)

// Run runs the controller, the input queue and the underlay sockets
// until ctx is done.
func (g *Glue) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { g.ctl.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-g.in:
				g.ctl.Input(p)
			}
		}
	})
	t := time.NewTicker(ikeRetry)
	defer t.Stop()
	for {
		_, changed := g.d.Watch()
		g.syncUnderlay(g.d.IKEConfig())
		select {
		case <-ctx.Done():
			wg.Wait() // the controller has torn its SAs down (and sent Deletes)
			g.mu.Lock()
			g.closeUnderlay()
			g.mu.Unlock()
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// syncUnderlay opens, moves or closes the underlay sockets. They stay
// open while an IKE SA on the underlay lives, so that deleting the last
// policy still reaches the peer (the engine's Delete and its
// retransmissions), and close at the next check after.
func (g *Glue) syncUnderlay(cfg daemon.IKEConfig) {
	var want underlayAt
	if cfg.Enabled && cfg.Underlay.IsValid() && slices.ContainsFunc(cfg.Policies, func(p daemon.IKEPolicyConfig) bool { return p.Policy.VM == "" }) {
		want = underlayAt{netns: cfg.UnderlayNetns, addr: cfg.Underlay}
	}
	for i := range cfg.Policies {
		clear(cfg.Policies[i].Policy.PSK)
		clear(cfg.Policies[i].Policy.PPK)
	}
	lingering := slices.ContainsFunc(g.ctl.Engine().IKESAs(), func(s ike.IKESAInfo) bool { return s.Scope == sa.Scope{} })
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.under != nil && (g.under.at == want || !want.addr.IsValid() && lingering) {
		return
	}
	g.closeUnderlay()
	if want.addr.IsValid() {
		u, err := openUnderlay(want)
		if err != nil {
			if g.want != want {
				g.log.Warn("IKE cannot listen on the underlay address yet; retrying", "netns", want.netns, "addr", want.addr, "err", err)
			}
		} else {
			g.under = u
			g.log.Info("IKE listening on the underlay address", "netns", want.netns, "addr", want.addr, "ports", "500,4500")
			go g.read(u, u.c500, ike500)
			go g.read(u, u.c4500, esp4500)
		}
	}
	g.want = want
}

func openUnderlay(at underlayAt) (*underlaySockets, error) {
	c500, err := vif.ListenUDP(at.netns, netip.AddrPortFrom(at.addr, ike500))
	if err != nil {
		return nil, err
	}
	c4500, err := vif.ListenUDP(at.netns, netip.AddrPortFrom(at.addr, esp4500))
	if err != nil {
		c500.Close()
		return nil, err
	}
	return &underlaySockets{at: at, c500: c500, c4500: c4500}, nil
}

// closeUnderlay closes the sockets; the caller holds g.mu.
func (g *Glue) closeUnderlay() {
	if g.under != nil {
		g.under.c500.Close()
		g.under.c4500.Close()
		g.under = nil
	}
}

// read feeds the IKE datagrams of one socket to the queue until it is
// closed. On 4500 only datagrams with the non-ESP marker are IKE: the
// others are ESP in UDP (the data path's, which sees them on the uplink)
// or NAT keepalives (one 0xff byte).
func (g *Glue) read(u *underlaySockets, c net.PacketConn, port uint16) {
	buf := make([]byte, 65536)
	local := netip.AddrPortFrom(u.at.addr, port)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		data := buf[:n]
		if port == esp4500 {
			if n < len(nonESPMarker) || [4]byte(data[:4]) != nonESPMarker {
				continue
			}
			data = data[4:]
		}
		remote := ua.AddrPort()
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
		g.enqueue(ike.Packet{Local: local, Remote: remote, Data: slices.Clone(data)})
	}
}

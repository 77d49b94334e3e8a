// Package ikebench measures IKE SA setups between two vifsec IKE engines
// (sa/ike): complete setups per second (IKE_SA_INIT, IKE_AUTH and the
// first Child SA, both sides) over a given transport, and the heap each
// established IKE SA holds. `make bench-ike` (internal/bench/cmd/
// vifsec-bench ike) runs it. It measures; it asserts nothing about timing.
//
// # Method
//
// Side A initiates, side B responds. A gets n policies at once, one per
// IKE SA (tenant "bench", names p0…), each with B as --remote-address;
// B has one respond-only policy for all of them. The engine starts every
// initiation in SetPolicies (so the n IKE_SA_INIT requests and their DH
// keys are made up front, inside the timed window); a gate between A's
// engine and the transport holds the IKE_SA_INIT requests back and
// releases one each time A installs a first Child SA, so that exactly
// Concurrency setups are in flight from the start to the end. The time is
// from the SetPolicies call to A's n-th Install (A installs last: B
// installs before it answers IKE_AUTH).
//
// Each engine processes its datagrams on one goroutine of its own (the
// engine's work runs under its lock, so one engine uses at most one core
// whatever the transport). The transports:
//
//   - in-memory: datagrams are handed to the other side's goroutine
//     through a channel (the baseline: the engines alone);
//   - UDP: each engine has a UDP socket, in its own network namespace
//     joined to the other by a veth pair (192.0.2.1 and 192.0.2.2, port
//     500), or on the loopback (127.0.0.1 and 127.0.0.2, one free port).
//
// The ratio UDP/in-memory is the cost of the kernel's UDP path, taken in
// the same run on the same machine.
//
// Memory: n IKE SAs are set up in memory, then runtime.MemStats.HeapAlloc
// after runtime.GC is compared with the heap before any policy was given.
// That difference holds both ends of each IKE SA (with one Child SA each:
// keys, cached last response, timers) plus A's n policies; the policies'
// share is measured on its own (the same n policies, respond only, on a
// third engine) and reported apart.
package ikebench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Suite is what the two sides negotiate and how they authenticate.
type Suite struct {
	Name  string
	IKE   string // strongSwan proposal syntax
	ESP   string
	Certs bool // ECDSA P-256 certificates (else a PSK)
}

// Suites are the measured suites: x25519 with a pre-shared key, the same
// with an additional ML-KEM-768 exchange (RFC 9370: one IKE_INTERMEDIATE
// exchange more, 1184 + 1088 bytes of KE data), and ecp256 with ECDSA
// P-256 certificates (sign, verify, chain check).
var Suites = []Suite{
	{Name: "x25519-psk", IKE: "aes128gcm16-prfsha256-x25519", ESP: "aes128gcm16"},
	{Name: "x25519-mlkem768-psk", IKE: "aes128gcm16-prfsha256-x25519-ke1_mlkem768", ESP: "aes128gcm16"},
	{Name: "ecp256-ecdsa", IKE: "aes128gcm16-prfsha256-ecp256", ESP: "aes128gcm16", Certs: true},
}

// Network is where the two engines' datagrams travel.
type Network interface {
	// Name says what it is, for reports ("in-memory", "netns+veth UDP").
	Name() string
	// Addrs are A's and B's addresses and the IKE port both use.
	Addrs() (a, b netip.Addr, port uint16)
	// Open returns A's and B's endpoints for one run.
	Open() (a, b Endpoint, err error)
}

// Endpoint carries one side's datagrams. Deliver is called for each
// received datagram (Data only valid during the call) until Close.
type Endpoint interface {
	Send(p ike.Packet) error
	Start(deliver func(ike.Packet))
	Close() error
}

// Result is one setup measurement.
type Result struct {
	Suite       string
	Network     string
	N           int
	Concurrency int
	Elapsed     time.Duration
	// Retransmits counts requests A sent again after they had gone out
	// (a datagram or its answer was lost, or the run was too slow).
	Retransmits int
	// WireBytes is the IKE bytes (UDP payloads, without the non-ESP
	// marker) both sides sent, retransmissions included.
	WireBytes int64
}

// BytesPerSetup is the IKE bytes on the wire per setup, both ways.
func (r Result) BytesPerSetup() float64 { return float64(r.WireBytes) / float64(r.N) }

// PerSecond is the setup rate.
func (r Result) PerSecond() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// Setups runs n setups of s over nw with conc in flight.
func Setups(nw Network, s Suite, n, conc int) (Result, error) {
	if n <= 0 || conc <= 0 {
		return Result{}, fmt.Errorf("ikebench: %d setups, %d in flight: both must be positive", n, conc)
	}
	ea, eb, err := nw.Open()
	if err != nil {
		return Result{}, err
	}
	r, err := setups(nw, ea, eb, s, n, conc, nil)
	ea.Close()
	eb.Close()
	return r, err
}

// MemResult is one memory measurement.
type MemResult struct {
	Suite string
	N     int
	// PairBytes is the heap per IKE SA with both of its ends (initiator
	// and responder, each with its first Child SA), without the
	// initiator's policy; PolicyBytes the heap of one initiating policy.
	PairBytes, PolicyBytes float64
}

// PerSA is the heap of one end of an established IKE SA (half a pair).
func (m MemResult) PerSA() float64 { return m.PairBytes / 2 }

// Memory sets up n IKE SAs of s in memory and measures the heap they hold.
func Memory(s Suite, n, conc int) (MemResult, error) {
	nw := InMemory()
	ea, eb, err := nw.Open()
	if err != nil {
		return MemResult{}, err
	}
	defer ea.Close()
	defer eb.Close()
	var m MemResult
	_, err = setups(nw, ea, eb, s, n, conc, &m)
	return m, err
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// credentials are the policies' secrets, made once per process.
type credentials struct {
	psk    []byte
	root   *x509.Certificate
	a, b   *x509.Certificate
	ka, kb crypto.Signer
}

var (
	credOnce sync.Once
	creds    credentials
	credErr  error
)

func getCredentials() (*credentials, error) {
	credOnce.Do(func() {
		creds.psk = []byte("ikebench pre-shared key, 32 byte")
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			credErr = err
			return
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ikebench CA", Organization: []string{"vifsec bench"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err == nil {
			creds.root, err = x509.ParseCertificate(der)
		}
		if err != nil {
			credErr = err
			return
		}
		leaf := func(serial int64, cn string) (*x509.Certificate, crypto.Signer, error) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, nil, err
			}
			t := &x509.Certificate{
				SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"vifsec bench"}},
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			}
			der, err := x509.CreateCertificate(rand.Reader, t, creds.root, &k.PublicKey, caKey)
			if err != nil {
				return nil, nil, err
			}
			c, err := x509.ParseCertificate(der)
			return c, k, err
		}
		if creds.a, creds.ka, err = leaf(2, "a.bench.example"); err == nil {
			creds.b, creds.kb, err = leaf(3, "b.bench.example")
		}
		credErr = err
	})
	return &creds, credErr
}

// policies returns A's n initiating policies and B's one.
func policies(s Suite, a, b netip.Addr, n int) ([]ike.Policy, ike.Policy, error) {
	cr, err := getCredentials()
	if err != nil {
		return nil, ike.Policy{}, err
	}
	ikeP, err := suite.ParseIKEProposal(s.IKE)
	if err != nil {
		return nil, ike.Policy{}, err
	}
	espP, err := suite.ParseESPProposal(s.ESP)
	if err != nil {
		return nil, ike.Policy{}, err
	}
	bits := 32
	if a.Is6() {
		bits = 128
	}
	pb := ike.Policy{Tenant: "bench", Name: "responder", Local: b,
		LocalTS: []netip.Prefix{netip.PrefixFrom(b, bits)}, RemoteTS: []netip.Prefix{netip.PrefixFrom(a, bits)},
		Mode: sa.ModeTransport, IKE: ikeP, ESP: espP}
	base := ike.Policy{Tenant: "bench", Local: a, Remote: b,
		LocalTS: pb.RemoteTS, RemoteTS: pb.LocalTS, Mode: sa.ModeTransport, IKE: ikeP, ESP: espP}
	if s.Certs {
		roots := []*x509.Certificate{cr.root}
		base.Cert, base.Key, base.Roots, base.RemoteID = cr.a, cr.ka, roots, "CN=b.bench.example, O=vifsec bench"
		pb.Cert, pb.Key, pb.Roots, pb.AnyRemoteID = cr.b, cr.kb, roots, true
	} else {
		base.PSK, pb.PSK = cr.psk, cr.psk
	}
	ps := make([]ike.Policy, n)
	for i := range ps {
		ps[i] = base
		ps[i].Name = fmt.Sprintf("p%d", i)
	}
	return ps, pb, nil
}

// gate holds A's IKE_SA_INIT requests back and lets credit of them out;
// it also counts A's retransmissions.
type gate struct {
	send  func(ike.Packet) error
	bytes *atomic.Int64 // nil: not counted

	mu          sync.Mutex
	credit      int
	held        []ike.Packet
	seen        map[reqKey]bool // A's requests: true once on the wire, false while held
	retransmits int
	err         error
}

// reqKey names one request of A: IKE SA (by SPIi), exchange, message ID.
type reqKey struct {
	spiI uint64
	exch wire.ExchangeType
	id   uint32
}

// request returns b's key if it is a request.
func request(b []byte) (reqKey, bool) {
	if len(b) < wire.HeaderLen || b[19]&wire.FlagResponse != 0 {
		return reqKey{}, false
	}
	return reqKey{binary.BigEndian.Uint64(b[:8]), wire.ExchangeType(b[18]), binary.BigEndian.Uint32(b[20:24])}, true
}

func (g *gate) Send(p ike.Packet) {
	if k, ok := request(p.Data); ok {
		g.mu.Lock()
		onWire, known := g.seen[k]
		switch {
		case known && !onWire:
			g.mu.Unlock()
			return // a retransmission of a held request: the first copy goes later
		case known:
			g.retransmits++
		case k.exch == wire.ExchangeIKESAInit && g.credit == 0:
			g.seen[k] = false
			g.held = append(g.held, p)
			g.mu.Unlock()
			return
		case k.exch == wire.ExchangeIKESAInit:
			g.credit--
			g.seen[k] = true
		default:
			g.seen[k] = true
		}
		g.mu.Unlock()
	}
	g.transmit(p)
}

func (g *gate) transmit(p ike.Packet) {
	if g.bytes != nil {
		g.bytes.Add(int64(len(p.Data)))
	}
	if err := g.send(p); err != nil {
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
	}
}

// release lets one more IKE_SA_INIT request out.
func (g *gate) release() {
	g.mu.Lock()
	if len(g.held) == 0 {
		g.credit++
		g.mu.Unlock()
		return
	}
	p := g.held[0]
	g.held[0] = ike.Packet{}
	g.held = g.held[1:]
	k, _ := request(p.Data)
	g.seen[k] = true
	g.mu.Unlock()
	g.transmit(p)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setups runs one measurement on open endpoints; with mem it measures
// the heap instead of reporting a rate worth reading.
func setups(nw Network, ea, eb Endpoint, s Suite, n, conc int, mem *MemResult) (Result, error) {
	addrA, addrB, port := nw.Addrs()
	pa, pb, err := policies(s, addrA, addrB, n)
	if err != nil {
		return Result{}, err
	}
	var policyBytes float64
	if mem != nil {
		// The initiating policies' own share, on an engine that only
		// holds them (respond only: nothing is initiated).
		idle := make([]ike.Policy, n)
		for i := range pa {
			idle[i] = pa[i]
			idle[i].Remote = netip.Addr{}
		}
		h0 := heapAfterGC()
		e := ike.New(&ike.Config{Logger: discardLogger()})
		if err := e.SetPolicies(idle); err != nil {
			return Result{}, err
		}
		policyBytes = float64(heapAfterGC()-h0) / float64(n)
		runtime.KeepAlive(e)
		idle = nil
	}

	var doneA, doneB atomic.Int64
	finished := make(chan struct{})
	// Sized for the run, except when measuring the heap: then it is
	// dropped before the heap is read and must not be part of the heap
	// read before.
	seenSize := 2 * n
	if mem != nil {
		seenSize = 0
	}
	var wireBytes atomic.Int64
	g := &gate{send: ea.Send, bytes: &wireBytes, credit: conc, seen: make(map[reqKey]bool, seenSize)}
	cfg := func(install func(*ike.ChildSA) error, send func(ike.Packet)) *ike.Config {
		return &ike.Config{
			Logger: discardLogger(), Send: send, Install: install,
			Port: port, NATPort: port + 1,
			// Requests held at the gate are not lost; a real loss shows as
			// a stall of this long and a retransmission counted.
			RetransmitTimeout: 5 * time.Second,
			// Every setup comes from one address: the responder's
			// per-source limit (cookies from half of it, then silence)
			// would otherwise measure its cookie round trips and the
			// retransmission timeout, not setups.
			HalfOpenCookieThreshold: max(64, 2*conc),
			MaxHalfOpenPerSource:    max(64, 2*conc),
			MaxHalfOpen:             max(16384, 2*conc),
		}
	}
	a := ike.New(cfg(func(*ike.ChildSA) error {
		if k := doneA.Add(1); k == int64(n) {
			close(finished)
		} else if k < int64(n) {
			g.release()
		}
		return nil
	}, g.Send))
	var sendErr atomic.Pointer[error]
	b := ike.New(cfg(func(*ike.ChildSA) error { doneB.Add(1); return nil }, func(p ike.Packet) {
		wireBytes.Add(int64(len(p.Data)))
		if err := eb.Send(p); err != nil {
			sendErr.CompareAndSwap(nil, &err)
		}
	}))
	if err := b.SetPolicies([]ike.Policy{pb}); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })
	ea.Start(a.Input)
	eb.Start(b.Input)

	var h0 uint64
	if mem != nil {
		h0 = heapAfterGC()
	}
	start := time.Now()
	if err := a.SetPolicies(pa); err != nil {
		return Result{}, err
	}
	pa = nil
	limit := time.Duration(n)*20*time.Millisecond + 30*time.Second
	select {
	case <-finished:
	case <-time.After(limit):
		return Result{}, fmt.Errorf("ikebench: %s over %s: %d of %d setups after %v (B installed %d); see Retransmits", s.Name, nw.Name(), doneA.Load(), n, limit, doneB.Load())
	}
	elapsed := time.Since(start)
	g.mu.Lock()
	r := Result{Suite: s.Name, Network: nw.Name(), N: n, Concurrency: conc, Elapsed: elapsed, Retransmits: g.retransmits, WireBytes: wireBytes.Load()}
	gerr := g.err
	g.seen, g.held = nil, nil
	g.mu.Unlock()
	if gerr == nil {
		if p := sendErr.Load(); p != nil {
			gerr = *p
		}
	}
	if gerr != nil {
		return r, fmt.Errorf("ikebench: sending: %w", gerr)
	}
	if got := doneB.Load(); got != int64(n) {
		return r, fmt.Errorf("ikebench: B installed %d Child SAs, want %d", got, n)
	}
	up := 0
	for _, x := range a.IKESAs() {
		if x.State == "ESTABLISHED" && x.Children == 1 {
			up++
		}
	}
	if up != n {
		return r, fmt.Errorf("ikebench: %d of %d IKE SAs established on A", up, n)
	}
	if mem != nil {
		h1 := heapAfterGC()
		*mem = MemResult{Suite: s.Name, N: n, PolicyBytes: policyBytes,
			PairBytes: (float64(h1)-float64(h0))/float64(n) - policyBytes}
		runtime.KeepAlive(a)
		runtime.KeepAlive(b)
	}
	return r, nil
}

// ---- in-memory ----

type memNet struct{}

// InMemory is the baseline network: datagrams go from one engine's
// goroutine to the other's through a channel.
func InMemory() Network { return memNet{} }

func (memNet) Name() string { return "in-memory" }

func (memNet) Addrs() (netip.Addr, netip.Addr, uint16) {
	return netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 500
}

// memQueue bounds the datagrams waiting for one side; the gate keeps far
// fewer in flight.
const memQueue = 1 << 14

type memEnd struct {
	in, peer chan ike.Packet
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func (memNet) Open() (Endpoint, Endpoint, error) {
	qa, qb := make(chan ike.Packet, memQueue), make(chan ike.Packet, memQueue)
	a := &memEnd{in: qa, peer: qb, done: make(chan struct{})}
	b := &memEnd{in: qb, peer: qa, done: make(chan struct{})}
	return a, b, nil
}

func (m *memEnd) Send(p ike.Packet) error {
	// The receiver sees it from the sender.
	q := ike.Packet{Local: p.Remote, Remote: p.Local, Scope: p.Scope, Data: p.Data}
	select {
	case m.peer <- q:
		return nil
	default:
		return errors.New("in-memory queue full")
	}
}

func (m *memEnd) Start(deliver func(ike.Packet)) {
	m.wg.Go(func() {
		for {
			select {
			case <-m.done:
				return
			case p := <-m.in:
				deliver(p)
			}
		}
	})
}

func (m *memEnd) Close() error {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
	return nil
}

// ---- UDP ----

// udpEnd is one side's UDP socket.
type udpEnd struct {
	c     *net.UDPConn
	local netip.AddrPort
	wg    sync.WaitGroup
}

// NewUDPEndpoint wraps a UDP socket bound to local.
func NewUDPEndpoint(c net.PacketConn, local netip.AddrPort) (Endpoint, error) {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil, fmt.Errorf("ikebench: %T is not a UDP socket", c)
	}
	uc.SetReadBuffer(4 << 20)
	uc.SetWriteBuffer(4 << 20)
	return &udpEnd{c: uc, local: local}, nil
}

func (u *udpEnd) Send(p ike.Packet) error {
	_, err := u.c.WriteToUDPAddrPort(p.Data, p.Remote)
	return err
}

func (u *udpEnd) Start(deliver func(ike.Packet)) {
	u.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := u.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			deliver(ike.Packet{Local: u.local, Remote: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Data: buf[:n]})
		}
	})
}

func (u *udpEnd) Close() error {
	err := u.c.Close()
	u.wg.Wait()
	return err
}

type loopNet struct {
	port uint16
}

// Loopback is UDP between 127.0.0.1 and 127.0.0.2 on one free port.
func Loopback() (Network, error) {
	for range 20 {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		c2, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.2:%d", port))
		c.Close()
		if err == nil {
			c2.Close()
			return &loopNet{port: port}, nil
		}
	}
	return nil, errors.New("ikebench: no port free on both 127.0.0.1 and 127.0.0.2")
}

func (l *loopNet) Name() string { return "loopback UDP" }

func (l *loopNet) Addrs() (netip.Addr, netip.Addr, uint16) {
	return netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), l.port
}

func (l *loopNet) Open() (Endpoint, Endpoint, error) {
	a, b, port := l.Addrs()
	return openPair(func(addr netip.AddrPort) (net.PacketConn, error) { return net.ListenPacket("udp4", addr.String()) },
		func(addr netip.AddrPort) (net.PacketConn, error) { return net.ListenPacket("udp4", addr.String()) },
		netip.AddrPortFrom(a, port), netip.AddrPortFrom(b, port))
}

// openPair opens A's and B's sockets with their listen functions.
func openPair(listenA, listenB func(netip.AddrPort) (net.PacketConn, error), a, b netip.AddrPort) (Endpoint, Endpoint, error) {
	ca, err := listenA(a)
	if err != nil {
		return nil, nil, fmt.Errorf("ikebench: listening on %v: %w", a, err)
	}
	cb, err := listenB(b)
	if err != nil {
		ca.Close()
		return nil, nil, fmt.Errorf("ikebench: listening on %v: %w", b, err)
	}
	ea, err1 := NewUDPEndpoint(ca, a)
	eb, err2 := NewUDPEndpoint(cb, b)
	if err := errors.Join(err1, err2); err != nil {
		ca.Close()
		cb.Close()
		return nil, nil, err
	}
	return ea, eb, nil
}

package sa

import (
	"encoding/json"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/sa/replay"
)

// Scope identifies the VM interface an SA belongs to: its VLAN (0 =
// untagged) and MAC. SPIs are unique within a Scope, not across the host.
type Scope struct {
	VLAN uint16     `json:"vlan"`
	MAC  header.MAC `json:"mac"`
}

func (s Scope) String() string { return fmt.Sprintf("vlan %d mac %s", s.VLAN, s.MAC) }

// Key is the database key of an SA: (vlan, mac, SPI). It is comparable and
// small (12 bytes), so map lookups with it do not allocate.
type Key struct {
	Scope Scope
	SPI   uint32
}

func (k Key) String() string { return fmt.Sprintf("%s spi 0x%08x", k.Scope, k.SPI) }

// Limits is one lifetime bound; a zero field is unlimited.
type Limits struct {
	Bytes   uint64 `json:"bytes,omitempty"`
	Packets uint64 `json:"packets,omitempty"`
	Seconds uint64 `json:"seconds,omitempty"`
}

// Lifetime holds an SA's soft limit (raise EventSoft: time to rekey) and
// hard limit (the SA expires and drops traffic), RFC 4301 §4.4.2.1.
type Lifetime struct {
	Soft Limits `json:"soft"`
	Hard Limits `json:"hard"`
}

// UDPEncap is RFC 3948 UDP encapsulation of ESP (NAT traversal, RFC 7296
// §2.23): every ESP packet of the SA travels in a UDP datagram between
// these ports, in transport and tunnel mode alike. SrcPort is the port at
// the SA's Src, DstPort at its Dst: 4500 both, unless a NAT maps them
// (IKE learns the mapped port from the peer's datagrams). On receipt the
// ports are not checked (a NAT may re-map them at any time; ESP's ICV, not
// the UDP header, authenticates the packet).
type UDPEncap struct {
	SrcPort uint16 `json:"src_port"`
	DstPort uint16 `json:"dst_port"`
}

// Config is everything that defines an SA. It is what the CLI, the store
// and IKE produce; New turns it into a live SA.
type Config struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	SPI   uint32 `json:"spi"`
	// Dir is DirIn or DirOut for SAs IKE creates. Manual SAs (esxcli has no
	// direction flag) may leave it DirInvalid: the policy that uses the SA
	// gives it its direction.
	Dir Direction `json:"dir,omitempty"`
	// Src and Dst are the SA's endpoints: the packet's addresses in
	// transport mode, the outer tunnel header's in tunnel mode.
	Src          netip.Addr `json:"src"`
	Dst          netip.Addr `json:"dst"`
	Mode         Mode       `json:"mode"`
	Enc          EncAlg     `json:"enc"`
	EncKey       []byte     `json:"enc_key,omitempty"`
	Integ        IntegAlg   `json:"integ"`
	IntegKey     []byte     `json:"integ_key,omitempty"`
	ReplayWindow int        `json:"replay_window,omitempty"` // 0 = replay.DefaultSize
	ESN          bool       `json:"esn,omitempty"`
	Lifetime     Lifetime   `json:"lifetime"`
	// Encap, when set, carries the SA's ESP in UDP (RFC 3948); nil is
	// plain ESP (IP protocol 50). An SA with Encap accepts only
	// UDP-encapsulated ESP, one without only plain ESP.
	Encap *UDPEncap `json:"encap,omitempty"`
	// Created is when the SA was made, which seconds lifetimes count
	// from; New sets it when zero. A restored SA keeps its original time.
	Created time.Time `json:"created,omitzero"`
}

// Key returns the database key of c.
func (c *Config) Key() Key { return Key{Scope: c.Scope, SPI: c.SPI} }

// Validate checks c completely; the error names the CLI flag at fault.
func (c *Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("--sa-name: required")
	}
	if c.SPI <= 0xff {
		return fmt.Errorf("--sa-spi: 0x%x is reserved (RFC 4303 §2.1 reserves 0x0-0xff); use 0x100-0xffffffff", c.SPI)
	}
	if c.Scope.VLAN > 4094 {
		return fmt.Errorf("--vlan: %d out of range; use 0-4094", c.Scope.VLAN)
	}
	if c.Mode != ModeTransport && c.Mode != ModeTunnel {
		return fmt.Errorf("--sa-mode: required; use transport or tunnel")
	}
	if c.Dir != DirInvalid && c.Dir != DirIn && c.Dir != DirOut {
		return fmt.Errorf("direction %v invalid; use in or out", c.Dir)
	}
	if !c.Src.IsValid() {
		return fmt.Errorf("--sa-source: required; give an IPv6 or IPv4 address")
	}
	if !c.Dst.IsValid() {
		return fmt.Errorf("--sa-destination: required; give an IPv6 or IPv4 address")
	}
	if c.Src.Zone() != "" || c.Dst.Zone() != "" {
		return fmt.Errorf("--sa-source/--sa-destination: zones (%%if) are not accepted")
	}
	if c.Src.Unmap().Is4() != c.Dst.Unmap().Is4() {
		return fmt.Errorf("--sa-source %s and --sa-destination %s are of different address families", c.Src, c.Dst)
	}
	if err := CheckSuite(c.Enc, c.Integ); err != nil {
		return fmt.Errorf("--encryption-algorithm/--integrity-algorithm: %w", err)
	}
	if err := CheckEncKey(c.Enc, c.EncKey); err != nil {
		return fmt.Errorf("--encryption-key: %w", err)
	}
	if err := CheckIntegKey(c.Integ, c.IntegKey); err != nil {
		return fmt.Errorf("--integrity-key: %w", err)
	}
	if w := c.ReplayWindow; w != 0 && (w < replay.MinSize || w > replay.MaxSize) {
		return fmt.Errorf("--replay-window: %d out of range; use %d-%d (default %d)", w, replay.MinSize, replay.MaxSize, replay.DefaultSize)
	}
	if e := c.Encap; e != nil && (e.SrcPort == 0 || e.DstPort == 0) {
		return fmt.Errorf("encap: UDP ports %d -> %d invalid; both must be 1-65535 (4500 unless a NAT maps them)", e.SrcPort, e.DstPort)
	}
	s, h := c.Lifetime.Soft, c.Lifetime.Hard
	for _, p := range [...]struct {
		flag       string
		soft, hard uint64
	}{{"--lifetime-bytes", s.Bytes, h.Bytes}, {"--lifetime-packets", s.Packets, h.Packets}, {"--lifetime-seconds", s.Seconds, h.Seconds}} {
		if p.hard != 0 && p.soft > p.hard {
			return fmt.Errorf("%s: soft limit %d exceeds hard limit %d", p.flag, p.soft, p.hard)
		}
	}
	return nil
}

// Redacted returns a copy of c without key material, for listing and logs.
func (c Config) Redacted() Config {
	c.EncKey, c.IntegKey = nil, nil
	c.Encap = c.Encap.clone()
	return c
}

// clone returns a copy of e that shares nothing with it (nil for nil).
func (e *UDPEncap) clone() *UDPEncap {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// String never includes keys.
func (c Config) String() string {
	b, _ := json.Marshal(c.Redacted())
	return string(b)
}

// EventKind says what happened to an SA.
type EventKind uint8

const (
	EventInvalid     EventKind = iota
	EventSoft                  // soft lifetime reached: rekey now
	EventHard                  // hard lifetime reached: the SA drops traffic
	EventSeqOverflow           // outbound sequence numbers exhausted
	// EventPeerMoved: an authenticated packet of a UDP-encapsulated
	// inbound SA came from another address or port than the SA's peer
	// (a NAT rebinding); Event.Peer says where from.
	EventPeerMoved
)

func (k EventKind) String() string {
	switch k {
	case EventSoft:
		return "soft-lifetime"
	case EventHard:
		return "hard-lifetime"
	case EventSeqOverflow:
		return "seq-overflow"
	case EventPeerMoved:
		return "peer-moved"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event reports a lifetime transition of an SA, or its peer's move. It is
// a value; sending it allocates nothing.
type Event struct {
	Kind EventKind
	Key  Key
	Name string
	Peer netip.AddrPort // EventPeerMoved: where the packet came from
}

// Counters are an SA's statistics, updated lock-free by the data path and
// read at scrape time.
type Counters struct {
	Packets atomic.Uint64
	Bytes   atomic.Uint64
	Drops   [drop.NumCounted]atomic.Uint64
}

const (
	stateLive uint32 = iota
	stateSoft
	stateExpired
)

// seqSoftMark is where a non-ESN outbound SA asks to be rekeyed: 2^32
// minus 2^20 packets of margin, about a second at a million packets/s.
const seqSoftMark = 1<<32 - 1<<20

// SA is a live security association. Its configuration is immutable after
// New; the data path may use an SA from several goroutines at once (see the
// package comment for which state is atomic and which is under a per-SA
// mutex).
type SA struct {
	cfg     Config
	key     Key
	suite   suite
	created time.Time

	outSeq atomic.Uint64 // last sequence number sent

	// Sequence reservation (see "Outbound sequence numbers" in the
	// package comment): NextSeq hands out numbers up to seqLimit; from
	// seqMark on it takes the slow path (asks for a renewal, or refuses).
	// seqStopped is set by Freeze and Refuse: a stopped SA's limit is
	// never raised again.
	seqLimit   atomic.Uint64
	seqMark    atomic.Uint64
	seqStopped atomic.Bool
	refused    atomic.Pointer[string] // why the SA refuses to send; nil if it does not

	replayMu sync.Mutex
	replay   *replay.Window // nil for outbound-only SAs

	// encap is cfg.Encap as a value, for the data path; udp says it is set.
	encap UDPEncap
	udp   bool

	// peer is where the remote end of a UDP-encapsulated SA is since
	// Rebind; nil: the configuration's (Dst and Encap.DstPort outbound,
	// Src and Encap.SrcPort inbound). noted is the last endpoint
	// NotePeer reported.
	peer    atomic.Pointer[netip.AddrPort]
	notedMu sync.Mutex
	noted   netip.AddrPort

	state atomic.Uint32
	sink  *eventSink // set by DB.Apply; nil: nobody listens
	Stats Counters
}

// New validates cfg and builds the SA with its keyed crypto state. The SA
// keeps its own copy of the keys.
func New(cfg Config) (*SA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EncKey = append([]byte(nil), cfg.EncKey...)
	cfg.IntegKey = append([]byte(nil), cfg.IntegKey...)
	cfg.Encap = cfg.Encap.clone()
	if cfg.Created.IsZero() {
		cfg.Created = time.Now().UTC().Round(0)
	}
	s := &SA{cfg: cfg, key: cfg.Key(), created: cfg.Created}
	s.seqLimit.Store(SeqUnlimited)
	s.seqMark.Store(SeqUnlimited)
	if cfg.Encap != nil {
		s.encap, s.udp = *cfg.Encap, true
	}
	if err := s.suite.init(&s.cfg); err != nil {
		return nil, err
	}
	if cfg.Dir != DirOut {
		s.replay = new(replay.Window)
		if err := s.replay.Init(cfg.ReplayWindow, cfg.ESN); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Config returns the SA's configuration without keys.
func (s *SA) Config() Config { return s.cfg.Redacted() }

// ConfigWithKeys returns the full configuration, keys included, for the
// state store only.
func (s *SA) ConfigWithKeys() Config {
	c := s.cfg
	c.EncKey = append([]byte(nil), c.EncKey...)
	c.IntegKey = append([]byte(nil), c.IntegKey...)
	c.Encap = c.Encap.clone()
	return c
}

func (s *SA) Name() string       { return s.cfg.Name }
func (s *SA) Key() Key           { return s.key }
func (s *SA) SPI() uint32        { return s.cfg.SPI }
func (s *SA) Mode() Mode         { return s.cfg.Mode }
func (s *SA) Dir() Direction     { return s.cfg.Dir }
func (s *SA) Src() netip.Addr    { return s.cfg.Src }
func (s *SA) Dst() netip.Addr    { return s.cfg.Dst }
func (s *SA) ESN() bool          { return s.cfg.ESN }
func (s *SA) Created() time.Time { return s.created }

// Encap returns the SA's UDP encapsulation (RFC 3948) and whether it has
// one; the remote port is the peer's since Rebind.
func (s *SA) Encap() (UDPEncap, bool) {
	e := s.encap
	if p := s.peer.Load(); p != nil {
		if s.cfg.Dir == DirOut {
			e.DstPort = p.Port()
		} else {
			e.SrcPort = p.Port()
		}
	}
	return e, s.udp
}

// OuterDst is the destination of a tunnel-mode outbound SA's outer
// header: Dst, or the peer's address since Rebind.
func (s *SA) OuterDst() netip.Addr {
	if p := s.peer.Load(); p != nil && s.cfg.Dir == DirOut {
		return p.Addr()
	}
	return s.cfg.Dst
}

// Peer returns the remote end of a UDP-encapsulated SA, address and port:
// where an outbound SA sends, where an inbound SA's packets come from.
// ok is false for an SA without UDP encapsulation or direction.
func (s *SA) Peer() (p netip.AddrPort, ok bool) {
	if !s.udp || s.cfg.Dir == DirInvalid {
		return netip.AddrPort{}, false
	}
	if q := s.peer.Load(); q != nil {
		return *q, true
	}
	if s.cfg.Dir == DirOut {
		return netip.AddrPortFrom(s.cfg.Dst, s.encap.DstPort), true
	}
	return netip.AddrPortFrom(s.cfg.Src, s.encap.SrcPort), true
}

// Rebind moves the remote end of a UDP-encapsulated SA to "to", in place
// (RFC 3948, RFC 7296 §2.23: a NAT rebinding IKE followed): an outbound
// SA sends there from its next packet (in tunnel mode to its address; in
// transport mode, whose outer header is the packet's own, to its port);
// an inbound SA's peer is "to" from then on. Keys, sequence numbers and
// the replay window are unchanged. "to" must be of the SA's family.
func (s *SA) Rebind(to netip.AddrPort) error {
	cur, ok := s.Peer()
	if !ok {
		return fmt.Errorf("sa %s: rebind: not a UDP-encapsulated SA with a direction", s.cfg.Name)
	}
	if !to.IsValid() || to.Port() == 0 || to.Addr().Unmap().Is4() != cur.Addr().Unmap().Is4() {
		return fmt.Errorf("sa %s: rebind to %v: want an address of the SA's family (as %v) and a port", s.cfg.Name, to, cur)
	}
	s.peer.Store(&to)
	return nil
}

// NotePeer is the data path's report that a packet of this inbound SA,
// authenticated and inside the replay window, came from "from" (the
// outer source address and UDP source port). When that is not the SA's
// peer it raises EventPeerMoved, once for each new endpoint. It takes no
// lock and allocates nothing when "from" is the peer.
func (s *SA) NotePeer(from netip.AddrPort) {
	cur, ok := s.Peer()
	if !ok || s.cfg.Dir != DirIn || from == cur {
		return
	}
	s.notedMu.Lock()
	if from == s.noted {
		s.notedMu.Unlock()
		return
	}
	s.noted = from
	s.notedMu.Unlock()
	if s.sink != nil {
		s.sink.emit(Event{Kind: EventPeerMoved, Key: s.key, Name: s.cfg.Name, Peer: from})
	}
}

// IVLen, ICVLen and Align describe the ESP framing of this SA's suite.
func (s *SA) IVLen() int  { return s.suite.ivLen }
func (s *SA) ICVLen() int { return s.suite.icvLen }
func (s *SA) Align() int  { return s.suite.align }

// Overhead is the most ESP adds to a payload of this SA, excluding any
// outer (tunnel) IP header: header, IV, worst-case padding, trailer, ICV,
// and the 8-byte UDP header of an SA with Encap.
func (s *SA) Overhead() int {
	o := 8 + s.suite.ivLen + s.suite.align - 1 + 2 + s.suite.icvLen
	if s.udp {
		o += 8
	}
	return o
}

// Expired reports whether the SA passed a hard limit.
func (s *SA) Expired() bool { return s.state.Load() == stateExpired }

// Drop counts a drop against s, under the counter d is counted as
// (drop.Reason.Counted). It is safe on a nil SA (no-op).
func (s *SA) Drop(d drop.Reason) {
	if c := d.Counted(); s != nil && c < drop.NumCounted {
		s.Stats.Drops[c].Add(1)
	}
}

// NextSeq reserves the next outbound sequence number. Without ESN an SA
// that has sent 2^32-1 packets refuses (RFC 4303 §3.3.3: it must be
// rekeyed, never wrap). It is ReserveSeq(1).
func (s *SA) NextSeq() (uint64, drop.Reason) {
	n, _, d := s.ReserveSeq(1)
	return n, d
}

// ReserveSeq reserves n consecutive outbound sequence numbers at once
// (n ≥ 1): the caller may send granted packets numbered first,
// first+1, …, first+granted-1, and must put them on the wire in that
// order. It applies the same limits as NextSeq would to n calls in a
// row: the durable reservation (SeqLimit; numbers above it are refused
// and a renewal is asked for), the soft mark and the end of the
// sequence space (2^32-1 without ESN, 2^64-1 with it). granted < n when
// a limit falls inside the block; the numbers past it are never handed
// out again (the gap is harmless). granted is 0 exactly when d is not
// drop.None. Lifetimes are not charged here: the caller accounts each
// packet it sends (Account). Safe for concurrent callers: blocks never
// overlap.
func (s *SA) ReserveSeq(n int) (first uint64, granted int, d drop.Reason) {
	if n < 1 {
		panic(fmt.Sprintf("sa: ReserveSeq(%d): want n >= 1", n))
	}
	if s.state.Load() == stateExpired {
		return 0, 0, drop.Expired
	}
	last := s.outSeq.Add(uint64(n))
	first = last - uint64(n) + 1
	if last < uint64(n) {
		// The add went past 2^64-1 (ESN): the numbers up to it remain.
		s.outSeq.Store(^uint64(0)) // stay saturated, never wrap
		if n-int(last)-1 <= 0 {
			s.emitOnce(stateExpired, EventSeqOverflow)
			return 0, 0, drop.SeqOverflow
		}
		last = ^uint64(0)
	}
	if last >= s.seqMark.Load() {
		if last, d = s.seqSlow(first, last); d != drop.None {
			return 0, 0, d
		}
	}
	if !s.cfg.ESN {
		if first > 0xffffffff {
			s.outSeq.Store(1 << 32) // stay saturated, never wrap
			s.emitOnce(stateExpired, EventSeqOverflow)
			return 0, 0, drop.SeqOverflow
		}
		if first <= seqSoftMark && seqSoftMark <= last {
			s.emitOnce(stateSoft, EventSoft)
		}
		if last > 0xffffffff {
			// The block runs past the last number: what fits is sent,
			// the next reservation overflows.
			last = 0xffffffff
		}
	}
	return first, int(last - first + 1), drop.None
}

// SetNextSeq sets the next sequence number NextSeq returns; for tests
// and for restoring state, before the SA is published.
func (s *SA) SetNextSeq(n uint64) { s.outSeq.Store(n - 1) }

// SeqUnlimited as a sequence limit means the SA has no reservation to
// respect: an SA that dies with the process (IKE's) or a test's.
const SeqUnlimited = ^uint64(0)

// seqSlow is ReserveSeq past the renewal mark, for the block
// first..last: numbers above the reservation are refused, and a renewal
// is asked for either way. It returns the last number that may be sent
// (d is not drop.None when even first may not). A refused number is
// never handed out again: the gap it leaves is harmless.
func (s *SA) seqSlow(first, last uint64) (uint64, drop.Reason) {
	lim := s.seqLimit.Load()
	if lim == SeqUnlimited {
		return last, drop.None
	}
	if first > lim {
		if s.refused.Load() != nil {
			return 0, drop.SeqRefused
		}
		s.askRenewal()
		return 0, drop.SeqReservation
	}
	s.askRenewal()
	return min(last, lim), drop.None
}

func (s *SA) askRenewal() {
	if s.sink != nil && !s.seqStopped.Load() {
		s.sink.askRenewal()
	}
}

// LastSeq is the last sequence number NextSeq handed out (0: none),
// whether or not the packet was then sent. No number above it was ever
// handed out.
func (s *SA) LastSeq() uint64 { return s.outSeq.Load() }

// SeqLimit is the highest sequence number the SA may hand out (its
// durable reservation); SeqUnlimited if it has none to respect.
func (s *SA) SeqLimit() uint64 { return s.seqLimit.Load() }

// SetSeqLimit makes NextSeq hand out numbers up to limit only and ask for
// a renewal (DB.RenewalWanted) from mark on (mark <= limit). It is for an
// SA not yet published; a published SA's limit only grows (RaiseSeqLimit)
// or drops to nothing (Freeze, Refuse).
func (s *SA) SetSeqLimit(limit, mark uint64) {
	s.seqLimit.Store(limit)
	s.seqMark.Store(min(mark, limit))
}

// RaiseSeqLimit raises the reservation to limit (never lowers it), with
// the renewal mark at mark. The caller made limit durable first. It
// reports false, changing nothing, once the SA was frozen or refused.
func (s *SA) RaiseSeqLimit(limit, mark uint64) bool {
	for {
		if s.seqStopped.Load() {
			return false
		}
		cur := s.seqLimit.Load()
		if limit <= cur {
			return true
		}
		if s.seqLimit.CompareAndSwap(cur, limit) {
			// The mark only ever moves forward with the limit: a sender
			// that read the old mark takes the slow path once more.
			s.seqMark.Store(min(mark, limit))
			return true
		}
	}
}

// Freeze stops the SA from handing out any further sequence number and
// returns the last one it handed out: the exact value to store at a clean
// stop. After Freeze, NextSeq refuses (drop.SeqReservation) and
// RaiseSeqLimit does nothing.
func (s *SA) Freeze() uint64 {
	s.seqStopped.Store(true)
	s.seqLimit.Store(0)
	s.seqMark.Store(0)
	// Any NextSeq that took a number above this load sees the zero limit
	// (its Add came after the stores above), so none above it is sent.
	return s.outSeq.Load()
}

// Refuse makes the SA refuse to send (drop.SeqRefused) until it is
// replaced: the daemon cannot prove which sequence numbers it sent under
// its key. why is shown to the operator.
func (s *SA) Refuse(why string) {
	s.refused.Store(&why)
	s.Freeze()
}

// Refused says why the SA refuses to send; "" if it does not.
func (s *SA) Refused() string {
	if p := s.refused.Load(); p != nil {
		return *p
	}
	return ""
}

// ReplayCheck infers the full sequence number from the wire's low 32 bits
// and checks it against the window, before any decryption.
func (s *SA) ReplayCheck(seqLow uint32) (uint64, drop.Reason) {
	if s.replay == nil {
		return 0, drop.NoSA
	}
	s.replayMu.Lock()
	seq, ok := s.replay.Infer(seqLow)
	ok = ok && s.replay.Check(seq)
	s.replayMu.Unlock()
	if !ok {
		return 0, drop.Replay
	}
	return seq, drop.None
}

// ReplayAccept moves the window after the packet authenticated.
func (s *SA) ReplayAccept(seq uint64) drop.Reason {
	s.replayMu.Lock()
	ok := s.replay.Accept(seq)
	s.replayMu.Unlock()
	if !ok {
		return drop.Replay
	}
	return drop.None
}

// Account adds one packet of n bytes to the SA's counters and applies its
// byte and packet lifetimes. It returns drop.Expired once the hard limit is
// crossed; the packet that crosses it is the first one refused.
func (s *SA) Account(n int) drop.Reason {
	st := s.state.Load()
	if st == stateExpired {
		return drop.Expired
	}
	p := s.Stats.Packets.Add(1)
	b := s.Stats.Bytes.Add(uint64(n))
	h := &s.cfg.Lifetime.Hard
	if (h.Packets != 0 && p > h.Packets) || (h.Bytes != 0 && b > h.Bytes) {
		s.Stats.Packets.Add(^uint64(0))
		s.Stats.Bytes.Add(^uint64(n - 1))
		s.emitOnce(stateExpired, EventHard)
		return drop.Expired
	}
	if st == stateLive {
		so := &s.cfg.Lifetime.Soft
		if (so.Packets != 0 && p >= so.Packets) || (so.Bytes != 0 && b >= so.Bytes) {
			s.emitOnce(stateSoft, EventSoft)
		}
	}
	return drop.None
}

// CheckTime applies the seconds lifetimes; the DB calls it from Tick.
func (s *SA) CheckTime(now time.Time) {
	age := uint64(now.Sub(s.created) / time.Second)
	if h := s.cfg.Lifetime.Hard.Seconds; h != 0 && age >= h {
		s.emitOnce(stateExpired, EventHard)
		return
	}
	if so := s.cfg.Lifetime.Soft.Seconds; so != 0 && age >= so {
		s.emitOnce(stateSoft, EventSoft)
	}
}

// emitOnce moves the state forward to st (never back) and, if this call
// made the move, reports the event without blocking.
func (s *SA) emitOnce(st uint32, kind EventKind) {
	for {
		cur := s.state.Load()
		if cur >= st {
			return
		}
		if s.state.CompareAndSwap(cur, st) {
			break
		}
	}
	if s.sink != nil {
		s.sink.emit(Event{Kind: kind, Key: s.key, Name: s.cfg.Name})
	}
}

// close expires the SA and zeroes its copies of the keys. The expanded
// key schedules inside crypto/aes, chacha20poly1305 and crypto/hmac cannot
// be zeroed from Go (they are not exported): they become garbage with the
// SA. The data path may still be finishing a packet with them, which is why
// they are not touched here.
func (s *SA) close() {
	s.state.Store(stateExpired)
	clear(s.cfg.EncKey)
	clear(s.cfg.IntegKey)
}

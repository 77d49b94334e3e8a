// Package viftest provides in-memory vif.Ports for tests: pairs that behave
// like a veth (what one end writes the other reads) and record what
// crossed them.
package viftest

import (
	"sync"

	"github.com/vifsec/vifsec/vif"
)

// Frame is a recorded frame with the metadata it was read with.
type Frame struct {
	Data []byte
	Meta vif.Meta
}

// Port is one end of an in-memory link. Safe for one reader and any
// number of writers.
type Port struct {
	name   string
	peer   *Port
	rx     chan Frame
	closed chan struct{}
	once   sync.Once

	// next is the frame WaitRead took off rx for the next ReadBatch.
	next    Frame
	hasNext bool

	mu  sync.Mutex
	log []Frame // every frame written on this end, if Record
	// Record keeps a copy of every frame written on this end.
	Record bool
}

// Pair returns two connected ports; each has a receive queue of depth.
func Pair(nameA, nameB string, depth int) (*Port, *Port) {
	a := &Port{name: nameA, rx: make(chan Frame, depth), closed: make(chan struct{})}
	b := &Port{name: nameB, rx: make(chan Frame, depth), closed: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

func (p *Port) Name() string { return p.name }

func (p *Port) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// Inject queues a frame for this end's reader as if it came off the link.
func (p *Port) Inject(data []byte, m vif.Meta) {
	select {
	case p.rx <- Frame{Data: append([]byte(nil), data...), Meta: m}:
	case <-p.closed:
	}
}

// WaitRead waits for a frame to read (vif.Waiter).
func (p *Port) WaitRead() error {
	if p.hasNext {
		return nil
	}
	select {
	case p.next = <-p.rx:
		p.hasNext = true
		return nil
	case <-p.closed:
		return vif.ErrClosed
	}
}

func (p *Port) ReadBatch(bufs [][]byte, sizes []int, meta []vif.Meta, offset int) (int, error) {
	if err := p.WaitRead(); err != nil {
		return 0, err
	}
	f := p.next
	p.next, p.hasNext = Frame{}, false
	n := 0
	for {
		room := bufs[n][offset:]
		if len(f.Data) > len(room) {
			sizes[n] = 0
		} else {
			sizes[n] = copy(room, f.Data)
		}
		meta[n] = f.Meta
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case f = <-p.rx:
		default:
			return n, nil
		}
	}
}

func (p *Port) WriteBatch(frames [][]byte) (int, error) {
	select {
	case <-p.closed:
		return 0, vif.ErrClosed
	default:
	}
	for _, fr := range frames {
		c := append([]byte(nil), fr...)
		if p.Record {
			p.mu.Lock()
			p.log = append(p.log, Frame{Data: c})
			p.mu.Unlock()
		}
		if p.peer != nil {
			select {
			case p.peer.rx <- Frame{Data: c}:
			default: // a full queue drops, as a real link would
			}
		}
	}
	return len(frames), nil
}

// Written returns copies of the frames written on this end so far.
func (p *Port) Written() []Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Frame(nil), p.log...)
}

// Recv waits for the next frame written by the peer, or returns false
// when the port is closed.
func (p *Port) Recv() (Frame, bool) {
	select {
	case f := <-p.rx:
		return f, true
	case <-p.closed:
		return Frame{}, false
	}
}

// Sink is a vif.Port whose writes are counted and dropped without
// allocating, for allocation tests. Reads block until Close.
type Sink struct {
	name   string
	Frames int
	Bytes  int
	Last   [2048]byte
	LastN  int
	closed chan struct{}
}

func NewSink(name string) *Sink { return &Sink{name: name, closed: make(chan struct{})} }

func (s *Sink) Name() string { return s.name }
func (s *Sink) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}
func (s *Sink) ReadBatch([][]byte, []int, []vif.Meta, int) (int, error) {
	return 0, s.WaitRead()
}

// WaitRead waits until Close (vif.Waiter): a sink never has a frame.
func (s *Sink) WaitRead() error {
	<-s.closed
	return vif.ErrClosed
}
func (s *Sink) WriteBatch(frames [][]byte) (int, error) {
	for _, f := range frames {
		s.Frames++
		s.Bytes += len(f)
		s.LastN = copy(s.Last[:], f)
	}
	return len(frames), nil
}

// Group is a vif.Multi of in-memory queues, as a port opened with
// PacketOptions.Queues would be: a test decides which queue a frame
// arrives on (the kernel's flow hash does for a real port) by injecting
// it on that queue.
type Group struct {
	name string
	// Q are the queues; Peers[i] is the other end of Q[i].
	Q, Peers []*Port
}

// NewGroup returns a group of k queues named name, each a Pair with a
// receive queue of depth.
func NewGroup(name string, k, depth int) *Group {
	g := &Group{name: name}
	for range k {
		q, peer := Pair(name, name+"-peer", depth)
		g.Q = append(g.Q, q)
		g.Peers = append(g.Peers, peer)
	}
	return g
}

func (g *Group) Name() string { return g.name }

// Queues returns the group's queues.
func (g *Group) Queues() []vif.Port {
	qs := make([]vif.Port, len(g.Q))
	for i, q := range g.Q {
		qs[i] = q
	}
	return qs
}

// ReadBatch reads the first queue.
func (g *Group) ReadBatch(bufs [][]byte, sizes []int, meta []vif.Meta, offset int) (int, error) {
	return g.Q[0].ReadBatch(bufs, sizes, meta, offset)
}

// WaitRead waits on the first queue.
func (g *Group) WaitRead() error { return g.Q[0].WaitRead() }

// WriteBatch writes on the first queue.
func (g *Group) WriteBatch(frames [][]byte) (int, error) { return g.Q[0].WriteBatch(frames) }

// Close closes every queue.
func (g *Group) Close() error {
	for _, q := range g.Q {
		q.Close()
	}
	return nil
}

package libvirt

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// A read-only client of libvirt's RPC protocol, "remote" program, as
// libvirtd and virtqemud serve it on their unix sockets
// (src/rpc/virnetprotocol.x, src/remote/remote_protocol.x). It knows the
// five procedures reconciliation needs: authentication, connect open and
// close, listing active domains, and a domain's live XML.
//
// Wire format of every message:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|       length (of the whole message, this word included)       |
//	+---------------------------------------------------------------+
//	|                 program (0x20008086: remote)                  |
//	|                  version (1)                                  |
//	|                  procedure                                    |
//	|          type (0 call, 1 reply, 2 event, 3 stream, ...)       |
//	|                  serial (the call's, in a reply)              |
//	|          status (0 ok, 1 error: a remote_error follows)       |
//	+---------------------------------------------------------------+
//	|                  payload: XDR, per procedure                  |

// DefaultSockets are libvirt's read-only sockets, tried in order: the
// monolithic libvirtd's, then the modular virtqemud's.
var DefaultSockets = []string{"/run/libvirt/libvirt-sock-ro", "/run/libvirt/virtqemud-sock-ro"}

// DefaultURI is the connection vifsec opens: the system QEMU driver.
const DefaultURI = "qemu:///system"

const (
	remoteProgram = 0x20008086
	remoteVersion = 1

	procConnectOpen           = 1
	procConnectClose          = 2
	procDomainGetXMLDesc      = 14
	procAuthList              = 66
	procAuthPolkit            = 70
	procConnectListAllDomains = 273

	msgCall  = 0
	msgReply = 1

	statusOK    = 0
	statusError = 1

	authNone   = 0
	authSASL   = 1
	authPolkit = 2

	connectReadOnly   = 1 // VIR_CONNECT_RO
	listDomainsActive = 1 // VIR_CONNECT_LIST_DOMAINS_ACTIVE

	headerLen = 24
	// maxMessage is VIR_NET_MESSAGE_MAX plus the length word.
	maxMessage = 16<<20 + 4
	// maxString is VIR_NET_MESSAGE_STRING_MAX.
	maxString = 4 << 20

	// errNoDomain is VIR_ERR_NO_DOMAIN: the domain went away.
	errNoDomain = 42
)

// RPCError is an error libvirt answered.
type RPCError struct {
	// Code is libvirt's virErrorNumber, Domain its virErrorDomain.
	Code, Domain int32
	Message      string
}

func (e *RPCError) Error() string { return "libvirt: " + e.Message }

// DomainRef names a domain as libvirt's RPC protocol does.
type DomainRef struct {
	Name string
	UUID [16]byte
	// ID is the running domain's ID, -1 if inactive.
	ID int32
}

// UUIDString returns the UUID as 8-4-4-4-12 lower-case hex digits.
func (r DomainRef) UUIDString() string {
	h := hex.EncodeToString(r.UUID[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Client is a read-only libvirt connection. Its methods are safe for
// concurrent use (calls are serialised); each honours its context's
// deadline and cancellation.
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	serial uint32
}

// Dial connects to libvirt's unix socket, authenticates (a root client
// passes the default polkit check without polkit being asked) and opens
// uri read-only.
func Dial(ctx context.Context, socket, uri string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn}
	if err := c.open(ctx, uri); err != nil {
		conn.Close()
		return nil, fmt.Errorf("libvirt at %s: %w", socket, err)
	}
	return c, nil
}

func (c *Client) open(ctx context.Context, uri string) error {
	ret, err := c.call(ctx, procAuthList, nil)
	if err != nil {
		return fmt.Errorf("list authentication types: %w", err)
	}
	d := xdrDec{b: ret}
	n := d.u32()
	if d.err == nil && uint64(n)*4 > uint64(len(d.b)) {
		d.err = errShort
	}
	var types []uint32
	for i := uint32(0); i < n && d.err == nil; i++ {
		types = append(types, d.u32())
	}
	if d.err != nil {
		return fmt.Errorf("list authentication types: %w", d.err)
	}
	switch {
	case len(types) == 0 || slices.Contains(types, authNone):
	case slices.Contains(types, authPolkit):
		ret, err := c.call(ctx, procAuthPolkit, nil)
		if err != nil {
			return fmt.Errorf("polkit authentication: %w", err)
		}
		d := xdrDec{b: ret}
		if complete := d.i32(); d.err != nil || complete != 1 {
			return errors.New("polkit authentication did not complete")
		}
	default:
		return fmt.Errorf("libvirt asks for SASL authentication (types %v), which vifsec does not do; set auth_unix_ro = \"none\" (or \"polkit\") in libvirtd.conf", types)
	}
	args := xdrOptString(nil, &uri)
	args = xdrU32(args, connectReadOnly)
	if _, err := c.call(ctx, procConnectOpen, args); err != nil {
		return fmt.Errorf("open %s: %w", uri, err)
	}
	return nil
}

// ActiveDomains lists the running domains.
func (c *Client) ActiveDomains(ctx context.Context) ([]DomainRef, error) {
	args := xdrU32(xdrU32(nil, 1), listDomainsActive) // need_results, flags
	ret, err := c.call(ctx, procConnectListAllDomains, args)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	doms, err := decodeDomainList(ret)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return doms, nil
}

// decodeDomainList reads remote_connect_list_all_domains_ret:
// remote_nonnull_domain domains<>; unsigned int ret.
func decodeDomainList(b []byte) ([]DomainRef, error) {
	d := xdrDec{b: b}
	n := d.u32()
	// Each domain takes at least 24 bytes: do not trust n beyond that.
	if d.err == nil && uint64(n)*24 > uint64(len(d.b)) {
		return nil, fmt.Errorf("%d domains announced in %d bytes", n, len(d.b))
	}
	var out []DomainRef
	for i := uint32(0); i < n && d.err == nil; i++ {
		var r DomainRef
		r.Name = d.str(maxString)
		copy(r.UUID[:], d.fixed(16))
		r.ID = d.i32()
		out = append(out, r)
	}
	d.u32()
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

// DomainXML returns the live XML of the domain r (as `virsh dumpxml`,
// without secrets).
func (c *Client) DomainXML(ctx context.Context, r DomainRef) ([]byte, error) {
	args := xdrString(nil, r.Name)
	args = append(args, r.UUID[:]...)
	args = xdrU32(args, uint32(r.ID))
	args = xdrU32(args, 0) // flags
	ret, err := c.call(ctx, procDomainGetXMLDesc, args)
	if err != nil {
		return nil, fmt.Errorf("XML of domain %s: %w", r.Name, err)
	}
	d := xdrDec{b: ret}
	s := d.str(maxString)
	if d.err != nil {
		return nil, fmt.Errorf("XML of domain %s: %w", r.Name, d.err)
	}
	return []byte(s), nil
}

// Close closes the connection (telling libvirt first, briefly).
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.call(ctx, procConnectClose, nil)
	return c.conn.Close()
}

// call sends one call and returns its reply's payload. Messages that are
// not the reply (events, keepalives) are skipped.
func (c *Client) call(ctx context.Context, proc uint32, args []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c.serial++
	msg := make([]byte, 0, 4+headerLen+len(args))
	msg = xdrU32(msg, uint32(4+headerLen+len(args)))
	msg = xdrU32(msg, remoteProgram)
	msg = xdrU32(msg, remoteVersion)
	msg = xdrU32(msg, proc)
	msg = xdrU32(msg, msgCall)
	msg = xdrU32(msg, c.serial)
	msg = xdrU32(msg, statusOK)
	msg = append(msg, args...)
	if _, err := c.conn.Write(msg); err != nil {
		return nil, ctxErr(ctx, err)
	}
	for {
		h, body, err := readMessage(c.conn)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		if h.prog != remoteProgram || h.typ != msgReply || h.serial != c.serial {
			continue
		}
		if h.proc != proc {
			return nil, fmt.Errorf("reply to procedure %d answers procedure %d", proc, h.proc)
		}
		switch h.status {
		case statusOK:
			return body, nil
		case statusError:
			return nil, decodeError(body)
		}
		return nil, fmt.Errorf("reply with status %d", h.status)
	}
}

// ctxErr says that an I/O error is the context's doing when it is: the
// connection's deadline is the context's, and may fire a moment before
// the context says it is done.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

type header struct {
	prog, vers, proc, typ, serial, status uint32
}

// readMessage reads one message: its header and payload.
func readMessage(r io.Reader) (header, []byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return header{}, nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n < 4+headerLen || n > maxMessage {
		return header{}, nil, fmt.Errorf("message length %d is outside %d-%d", n, 4+headerLen, maxMessage)
	}
	// Read in steps so a lying length costs no more memory than the
	// bytes that really arrive.
	var b []byte
	for rest := int(n) - 4; rest > 0; {
		step := min(rest, 64<<10)
		b = slices.Grow(b, step)
		m, err := io.ReadFull(r, b[len(b):len(b)+step])
		b = b[:len(b)+m]
		if err != nil {
			return header{}, nil, fmt.Errorf("message of %d bytes cut short: %w", n, err)
		}
		rest -= step
	}
	return parseHeader(b)
}

func parseHeader(b []byte) (header, []byte, error) {
	if len(b) < headerLen {
		return header{}, nil, errShort
	}
	be := binary.BigEndian
	h := header{prog: be.Uint32(b[0:]), vers: be.Uint32(b[4:]), proc: be.Uint32(b[8:]),
		typ: be.Uint32(b[12:]), serial: be.Uint32(b[16:]), status: be.Uint32(b[20:])}
	return h, b[headerLen:], nil
}

// decodeError reads a remote_error: code, domain, message (optional
// string), and fields vifsec does not need.
func decodeError(b []byte) error {
	d := xdrDec{b: b}
	e := &RPCError{Code: d.i32(), Domain: d.i32()}
	msg, ok := d.optStr(maxString)
	if d.err != nil {
		return fmt.Errorf("libvirt answered an error that cannot be read: %w", d.err)
	}
	if !ok || msg == "" {
		msg = fmt.Sprintf("error %d (no message)", e.Code)
	}
	e.Message = msg
	return e
}

// LiveDomain is a running domain and its live XML.
type LiveDomain struct {
	Ref DomainRef
	XML []byte
}

// ListLive connects to the first of sockets where libvirt answers, lists
// the running domains and reads each one's live XML. Domains that stop
// in between are left out. It returns the socket it used.
func ListLive(ctx context.Context, sockets []string, uri string) ([]LiveDomain, string, error) {
	var errs []error
	for _, s := range sockets {
		c, err := Dial(ctx, s, uri)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defer c.Close()
		refs, err := c.ActiveDomains(ctx)
		if err != nil {
			return nil, s, err
		}
		out := make([]LiveDomain, 0, len(refs))
		for _, r := range refs {
			x, err := c.DomainXML(ctx, r)
			var re *RPCError
			if errors.As(err, &re) && re.Code == errNoDomain {
				continue
			}
			if err != nil {
				return nil, s, err
			}
			out = append(out, LiveDomain{Ref: r, XML: x})
		}
		return out, s, nil
	}
	return nil, "", errors.Join(errs...)
}

package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/vifsec/vifsec/internal/libvirt"
)

// A read-only client of libvirt's RPC protocol ("remote" program, as
// libvirtd and virqemud serve it on their unix sockets), on
// github.com/digitalocean/go-libvirt. Reconciliation needs five
// procedures: authentication (list, polkit), connect open and close,
// listing active domains, and a domain's live XML. go-libvirt does the
// wire format and the authentication; this file adds what it lacks:
//
//   - a context: go-libvirt's calls wait for their reply without limit,
//     so the connection is dialled under the context and closed when the
//     context ends, which ends the call waiting on it;
//   - read-only: go-libvirt opens the connection with flags 0, not
//     VIR_CONNECT_RO. On libvirt's read-only sockets (libvirt.DefaultSockets)
//     libvirtd forces the connection read-only whatever the client asks;
//     vifsec only lists domains and reads their XML on any socket.

// Client is a read-only libvirt connection. Its methods are safe for
// concurrent use; each honours its context's deadline and cancellation,
// and a call its context ended leaves the client closed.
type Client struct {
	conn net.Conn
	l    *golibvirt.Libvirt
}

// Dial connects to libvirt's unix socket, authenticates (a root client
// passes the default polkit check without polkit being asked) and opens
// uri.
func Dial(ctx context.Context, socket, uri string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, l: golibvirt.NewWithDialer(dialers.NewAlreadyConnected(conn))}
	err = c.do(ctx, func() error { return c.l.ConnectToURI(golibvirt.ConnectURI(uri)) })
	if err != nil {
		conn.Close()
		var le golibvirt.Error
		if errors.As(err, &le) && le.Code == uint32(golibvirt.ErrAuthFailed) {
			err = fmt.Errorf("%w (vifsec authenticates only as none or polkit; set auth_unix_ro = \"none\" or \"polkit\" in libvirtd.conf)", err)
		}
		return nil, fmt.Errorf("libvirt at %s: open %s: %w", socket, uri, err)
	}
	return c, nil
}

// do runs f, closing the connection if ctx ends first.
func (c *Client) do(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	err := f()
	if !stop() || ctx.Err() != nil {
		c.conn.Close()
		return ctxErr(ctx, err)
	}
	return err
}

// ctxErr says that an error is the context's doing when it is.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if err == nil {
			return cerr
		}
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// ActiveDomains lists the running domains.
func (c *Client) ActiveDomains(ctx context.Context) ([]libvirt.DomainRef, error) {
	var doms []golibvirt.Domain
	err := c.do(ctx, func() (err error) {
		doms, _, err = c.l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	out := make([]libvirt.DomainRef, len(doms))
	for i, d := range doms {
		out[i] = libvirt.DomainRef{Name: d.Name, UUID: d.UUID, ID: d.ID}
	}
	return out, nil
}

// DomainXML returns the live XML of the domain r (as `virsh dumpxml`,
// without secrets).
func (c *Client) DomainXML(ctx context.Context, r libvirt.DomainRef) ([]byte, error) {
	var x string
	err := c.do(ctx, func() (err error) {
		x, err = c.l.DomainGetXMLDesc(golibvirt.Domain{Name: r.Name, UUID: r.UUID, ID: r.ID}, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("XML of domain %s: %w", r.Name, err)
	}
	return []byte(x), nil
}

// Close closes the connection (telling libvirt first, for at most a
// second).
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.do(ctx, c.l.Disconnect)
	return c.conn.Close()
}

// ListLive connects to the first of sockets where libvirt answers, lists
// the running domains and reads each one's live XML. Domains that stop
// in between are left out. It returns the socket it used.
func ListLive(ctx context.Context, sockets []string, uri string) ([]libvirt.LiveDomain, string, error) {
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
		out := make([]libvirt.LiveDomain, 0, len(refs))
		for _, r := range refs {
			x, err := c.DomainXML(ctx, r)
			if golibvirt.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, s, err
			}
			out = append(out, libvirt.LiveDomain{Ref: r, XML: x})
		}
		return out, s, nil
	}
	return nil, "", errors.Join(errs...)
}

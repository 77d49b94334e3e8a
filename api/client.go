package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// DefaultSocket is where vifsecd listens unless told otherwise.
const DefaultSocket = "/run/vifsec/vifsecd.sock"

// SocketPath resolves the socket as the CLI and the hook do: flag, else
// $VIFSEC_SOCKET, else DefaultSocket.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv("VIFSEC_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// UnreachableError is returned by Client when the daemon cannot be reached
// or the connection breaks before an answer (the CLI exits 3). A request
// that broke may or may not have been applied.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach vifsecd at %s: %v (is it running? see --socket or $VIFSEC_SOCKET)", e.Socket, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Client calls the API over a unix socket. It is safe for concurrent use.
// Refusals are returned as *Error; transport failures as
// *UnreachableError.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends a request with body in (nil for none) and decodes the answer
// into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vifsecd"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &UnreachableError{Socket: c.socket, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &UnreachableError{Socket: c.socket, Err: err}
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == nil {
			return &Error{Status: resp.StatusCode, Code: "internal", Message: fmt.Sprintf("vifsecd answered %s", resp.Status)}
		}
		eb.Error.Status = resp.StatusCode
		return eb.Error
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, "/"+Version+path, nil, out)
}

func (c *Client) send(ctx context.Context, method, path string, in any) (Added, error) {
	var a Added
	err := c.Do(ctx, method, "/"+Version+path, in, &a)
	return a, err
}

func (c *Client) remove(ctx context.Context, path string) (Removed, error) {
	var r Removed
	err := c.Do(ctx, http.MethodDelete, "/"+Version+path, nil, &r)
	return r, err
}

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (v VersionInfo, err error) {
	return v, c.get(ctx, "/version", &v)
}

// Tenants lists tenants.
func (c *Client) Tenants(ctx context.Context) (out []Tenant, err error) {
	return out, c.get(ctx, "/tenants", &out)
}

// AddTenant is `vifsec tenant add`.
func (c *Client) AddTenant(ctx context.Context, r TenantAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/tenants", r)
}

// RemoveTenant is `vifsec tenant remove`.
func (c *Client) RemoveTenant(ctx context.Context, name string) (Removed, error) {
	return c.remove(ctx, "/tenants/"+url.PathEscape(name))
}

// VMs lists VMs.
func (c *Client) VMs(ctx context.Context) (out []VM, err error) {
	return out, c.get(ctx, "/vms", &out)
}

// AttachVM is `vifsec vm attach`.
func (c *Client) AttachVM(ctx context.Context, r VMAttachRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/vms", r)
}

// DetachVM is `vifsec vm detach`.
func (c *Client) DetachVM(ctx context.Context, name string) (Removed, error) {
	return c.remove(ctx, "/vms/"+url.PathEscape(name))
}

// Uplink returns the uplink, nil if none is set.
func (c *Client) Uplink(ctx context.Context) (out *Uplink, err error) {
	return out, c.get(ctx, "/uplink", &out)
}

// Offloads is `vifsec offload show`.
func (c *Client) Offloads(ctx context.Context) (out []Offload, err error) {
	return out, c.get(ctx, "/offload", &out)
}

// SetUplink is `vifsec uplink set`.
func (c *Client) SetUplink(ctx context.Context, r UplinkSetRequest) (Added, error) {
	return c.send(ctx, http.MethodPut, "/uplink", r)
}

// SAs lists SAs.
func (c *Client) SAs(ctx context.Context) (out []SA, err error) {
	return out, c.get(ctx, "/sa", &out)
}

// AddSA is `vifsec sa add`. It returns only once the SA is durable.
func (c *Client) AddSA(ctx context.Context, r SAAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/sa", r)
}

// RemoveSA is `vifsec sa remove --sa-name NAME`.
func (c *Client) RemoveSA(ctx context.Context, name string) (Removed, error) {
	return c.remove(ctx, "/sa/"+url.PathEscape(name))
}

// RemoveAllSAs is `vifsec sa remove --removeall`.
func (c *Client) RemoveAllSAs(ctx context.Context) (Removed, error) {
	return c.remove(ctx, "/sa?all=true")
}

// SPs lists SPs.
func (c *Client) SPs(ctx context.Context) (out []SP, err error) {
	return out, c.get(ctx, "/sp", &out)
}

// AddSP is `vifsec sp add`.
func (c *Client) AddSP(ctx context.Context, r SPAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/sp", r)
}

// RemoveSP is `vifsec sp remove --sp-name NAME`.
func (c *Client) RemoveSP(ctx context.Context, name string) (Removed, error) {
	return c.remove(ctx, "/sp/"+url.PathEscape(name))
}

// RemoveAllSPs is `vifsec sp remove --removeall`.
func (c *Client) RemoveAllSPs(ctx context.Context) (Removed, error) {
	return c.remove(ctx, "/sp?all=true")
}

// FDB is `vifsec overlay fdb list [--tenant NAME]`.
func (c *Client) FDB(ctx context.Context, tenantName string) (out []FDBEntry, err error) {
	p := "/fdb"
	if tenantName != "" {
		p += "?tenant=" + url.QueryEscape(tenantName)
	}
	return out, c.get(ctx, p, &out)
}

// AddFDB is `vifsec overlay fdb add`.
func (c *Client) AddFDB(ctx context.Context, r FDBAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/fdb", r)
}

// RemoveFDB is `vifsec overlay fdb remove --tenant NAME --mac MAC`.
func (c *Client) RemoveFDB(ctx context.Context, tenantName, mac string) (Removed, error) {
	return c.remove(ctx, "/fdb?"+url.Values{"tenant": {tenantName}, "mac": {mac}}.Encode())
}

// Config is `vifsec config show`.
func (c *Client) Config(ctx context.Context) (out Config, err error) {
	return out, c.get(ctx, "/config", &out)
}

// ModifyConfig is `vifsec config modify`.
func (c *Client) ModifyConfig(ctx context.Context, r ConfigModifyRequest) (Added, error) {
	return c.send(ctx, http.MethodPut, "/config", r)
}

// Stats is `vifsec stats [--vm NAME]`.
func (c *Client) Stats(ctx context.Context, vm string) (out []Stats, err error) {
	p := "/stats"
	if vm != "" {
		p += "?vm=" + url.QueryEscape(vm)
	}
	return out, c.get(ctx, p, &out)
}

// IPsecSAs is `vifsec show-ipsecsa [--tenant NAME]`.
func (c *Client) IPsecSAs(ctx context.Context, tenantName string) (out []IPsecSA, err error) {
	p := "/ipsecsa"
	if tenantName != "" {
		p += "?tenant=" + url.QueryEscape(tenantName)
	}
	return out, c.get(ctx, p, &out)
}

// PutVM attaches the VM r describes, or moves the attached VM of that name
// and the same origin to r's device (PUT /v2/vms/NAME). It is idempotent.
func (c *Client) PutVM(ctx context.Context, r VMAttachRequest) (Added, error) {
	return c.send(ctx, http.MethodPut, "/vms/"+url.PathEscape(r.VM), r)
}

// UplinkStats is `vifsec stats --uplink`.
func (c *Client) UplinkStats(ctx context.Context) (out UplinkStats, err error) {
	return out, c.get(ctx, "/stats/uplink", &out)
}

// Tenant returns the tenant named name (GET /v2/tenants/NAME); an unknown
// name is an *Error with Code "not_found" (IsNotFound).
func (c *Client) Tenant(ctx context.Context, name string) (out Tenant, err error) {
	return out, c.get(ctx, "/tenants/"+url.PathEscape(name), &out)
}

// VM returns the VM named name (GET /v2/vms/NAME).
func (c *Client) VM(ctx context.Context, name string) (out VM, err error) {
	return out, c.get(ctx, "/vms/"+url.PathEscape(name), &out)
}

// SA returns the SA named name (GET /v2/sa/NAME), never its keys.
func (c *Client) SA(ctx context.Context, name string) (out SA, err error) {
	return out, c.get(ctx, "/sa/"+url.PathEscape(name), &out)
}

// SP returns the SP named name (GET /v2/sp/NAME).
func (c *Client) SP(ctx context.Context, name string) (out SP, err error) {
	return out, c.get(ctx, "/sp/"+url.PathEscape(name), &out)
}

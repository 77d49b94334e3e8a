package api

import (
	"context"
	"net/http"
	"net/url"
)

func tenantQuery(path, tenantName string) string {
	if tenantName != "" {
		path += "?tenant=" + url.QueryEscape(tenantName)
	}
	return path
}

// Policies is `vifsec policy show [--tenant NAME]`.
func (c *Client) Policies(ctx context.Context, tenantName string) (out []Policy, err error) {
	return out, c.get(ctx, tenantQuery("/policies", tenantName), &out)
}

// CreatePolicy is `vifsec policy create`.
func (c *Client) CreatePolicy(ctx context.Context, r PolicyCreateRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/policies", r)
}

// ModifyPolicy is `vifsec policy modify`.
func (c *Client) ModifyPolicy(ctx context.Context, tenantName, name string, r PolicyModifyRequest) (Added, error) {
	return c.send(ctx, http.MethodPatch, "/policies/"+url.PathEscape(tenantName)+"/"+url.PathEscape(name), r)
}

// DeletePolicy is `vifsec policy delete`.
func (c *Client) DeletePolicy(ctx context.Context, tenantName, name string) (Removed, error) {
	return c.remove(ctx, "/policies/"+url.PathEscape(tenantName)+"/"+url.PathEscape(name))
}

// RekeyPolicy is `vifsec policy rekey [--ike]` (ext).
func (c *Client) RekeyPolicy(ctx context.Context, tenantName, name string, ikeSA bool) (out Rekeyed, err error) {
	return out, c.Do(ctx, http.MethodPost, "/"+Version+"/policies/"+url.PathEscape(tenantName)+"/"+url.PathEscape(name)+"/rekey", PolicyRekeyRequest{IKE: ikeSA}, &out)
}

// Certificates is `vifsec certificate show [--tenant NAME]`.
func (c *Client) Certificates(ctx context.Context, tenantName string) (out []Certificate, err error) {
	return out, c.get(ctx, tenantQuery("/certificates", tenantName), &out)
}

// InstallCertificate is `vifsec certificate install`.
func (c *Client) InstallCertificate(ctx context.Context, r CertificateInstallRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/certificates", r)
}

// DeleteCertificate is `vifsec certificate delete`.
func (c *Client) DeleteCertificate(ctx context.Context, tenantName, name string) (Removed, error) {
	return c.remove(ctx, "/certificates/"+url.PathEscape(tenantName)+"/"+url.PathEscape(name))
}

// CACertificates is `vifsec ca-certificate show [--tenant NAME]`.
func (c *Client) CACertificates(ctx context.Context, tenantName string) (out []Certificate, err error) {
	return out, c.get(ctx, tenantQuery("/ca-certificates", tenantName), &out)
}

// AddCACertificates is `vifsec ca-certificate add`.
func (c *Client) AddCACertificates(ctx context.Context, r CACertificatesAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/ca-certificates", r)
}

// RemoveCACertificate is `vifsec ca-certificate remove`.
func (c *Client) RemoveCACertificate(ctx context.Context, tenantName, name string) (Removed, error) {
	return c.remove(ctx, "/ca-certificates/"+url.PathEscape(tenantName)+"/"+url.PathEscape(name))
}

// CRLs is `vifsec crl show [--tenant NAME]`.
func (c *Client) CRLs(ctx context.Context, tenantName string) (out []CRL, err error) {
	return out, c.get(ctx, tenantQuery("/crls", tenantName), &out)
}

// AddCRL is `vifsec crl add`.
func (c *Client) AddCRL(ctx context.Context, r CRLAddRequest) (Added, error) {
	return c.send(ctx, http.MethodPost, "/crls", r)
}

// IKESAs is `vifsec show-ikesa [--tenant NAME]`.
func (c *Client) IKESAs(ctx context.Context, tenantName string) (out []IKESA, err error) {
	return out, c.get(ctx, tenantQuery("/ikesa", tenantName), &out)
}

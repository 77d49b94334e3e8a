package api

import (
	"net/http"
	"strings"

	"github.com/vifsec/vifsec/internal/daemon"
)

// The IKE part of the API (ONTAP `security ipsec` policy, certificate,
// ca-certificate, show-ikesa; CRLs are an extension). No response
// carries a pre-shared key or a private key; requests that carry them
// are never logged with their bodies.

// ikeRoutes registers the IKE endpoints under prefix p ("/v2").
func (s *server) ikeRoutes(mux *http.ServeMux, p string) {
	mux.HandleFunc("GET "+p+"/policies", s.listPolicies)
	mux.HandleFunc("POST "+p+"/policies", s.createPolicy)
	mux.HandleFunc("PATCH "+p+"/policies/{tenant}/{name}", s.modifyPolicy)
	mux.HandleFunc("DELETE "+p+"/policies/{tenant}/{name}", s.deletePolicy)
	mux.HandleFunc("POST "+p+"/policies/{tenant}/{name}/rekey", s.rekeyPolicy)
	mux.HandleFunc("GET "+p+"/certificates", s.listCertificates)
	mux.HandleFunc("POST "+p+"/certificates", s.installCertificate)
	mux.HandleFunc("DELETE "+p+"/certificates/{tenant}/{name}", s.deleteCertificate)
	mux.HandleFunc("GET "+p+"/ca-certificates", s.listCACertificates)
	mux.HandleFunc("POST "+p+"/ca-certificates", s.addCACertificates)
	mux.HandleFunc("DELETE "+p+"/ca-certificates/{tenant}/{name}", s.removeCACertificate)
	mux.HandleFunc("GET "+p+"/crls", s.listCRLs)
	mux.HandleFunc("POST "+p+"/crls", s.addCRL)
	mux.HandleFunc("GET "+p+"/ikesa", s.listIKESAs)
}

func (s *server) listPolicies(w http.ResponseWriter, r *http.Request) {
	listByTenant(w, r, s.d.Policies, keep(PolicyOf))
}

func (s *server) createPolicy(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *PolicyCreateRequest) ([]string, error) {
		defer clearString(&req.PSK)
		defer clearString(&req.PPK)
		p, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return s.d.CreatePolicy(p)
	})
}

func (s *server) modifyPolicy(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusOK, func(req *PolicyModifyRequest) ([]string, error) {
		if req.PSK != nil {
			defer clearString(req.PSK)
		}
		if req.PPK != nil {
			defer clearString(req.PPK)
		}
		return s.d.ModifyPolicy(r.PathValue("tenant"), r.PathValue("name"), req.Edit())
	})
}

// clearString drops the request's copy of a secret. Go strings are
// immutable, so the bytes themselves stay until collected; the daemon
// keeps its own copy as a []byte, which it zeroes.
func clearString(s *string) { *s = "" }

func (s *server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	tn, name := r.PathValue("tenant"), r.PathValue("name")
	removed(w, s.d.DeletePolicy(tn, name), tn+"/"+name)
}

// rekeyPolicy rekeys a policy's Child SAs or IKE SA now (ext).
func (s *server) rekeyPolicy(w http.ResponseWriter, r *http.Request) {
	var req PolicyRekeyRequest
	if !decode(w, r, &req) {
		return
	}
	n, err := s.d.RekeyPolicy(r.PathValue("tenant"), r.PathValue("name"), req.IKE)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Rekeyed{Rekeyed: n})
}

func (s *server) listCertificates(w http.ResponseWriter, r *http.Request) {
	listByTenant(w, r, s.d.Certificates, keep(CertificateOf))
}

func (s *server) installCertificate(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *CertificateInstallRequest) ([]string, error) {
		defer clearString(&req.PEM)
		tn, name, t, pem, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return s.d.InstallCertificate(tn, name, t, pem)
	})
}

func (s *server) deleteCertificate(w http.ResponseWriter, r *http.Request) {
	tn, name := r.PathValue("tenant"), r.PathValue("name")
	removed(w, s.d.DeleteCertificate(tn, name), tn+"/"+name)
}

// listCACertificates lists the IPsec CAs: installed CA certificates that
// `ca-certificate add` made trusted.
func (s *server) listCACertificates(w http.ResponseWriter, r *http.Request) {
	listByTenant(w, r, s.d.Certificates, func(x daemon.CertInfo) (Certificate, bool) { return CertificateOf(x), x.IPsecCA })
}

func (s *server) addCACertificates(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusOK, func(req *CACertificatesAddRequest) ([]string, error) {
		var p problems
		p.required("--tenant", req.Tenant, "name the tenant")
		names := []string{}
		for _, n := range req.CACerts {
			if n == "" {
				p.addf("--ca-certs: an empty name in the list; write NAME[,NAME...]")
				continue
			}
			names = append(names, n)
		}
		if len(req.CACerts) == 0 {
			p.addf("--ca-certs: required; name installed CA certificates, comma separated (see vifsec certificate show)")
		}
		if err := p.err(); err != nil {
			return nil, err
		}
		return s.d.AddCACertificates(req.Tenant, names)
	})
}

func (s *server) removeCACertificate(w http.ResponseWriter, r *http.Request) {
	tn, name := r.PathValue("tenant"), r.PathValue("name")
	removed(w, s.d.RemoveCACertificate(tn, name), tn+"/"+name)
}

func (s *server) listCRLs(w http.ResponseWriter, r *http.Request) {
	listByTenant(w, r, s.d.CRLs, keep(CRLOf))
}

func (s *server) addCRL(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *CRLAddRequest) ([]string, error) {
		var p problems
		p.required("--tenant", req.Tenant, "name the tenant whose CA issued the CRL")
		if strings.TrimSpace(req.PEM) == "" {
			p.addf("PEM: none given; the CLI reads the CRL from stdin (vifsec crl add --tenant NAME < crl.pem)")
		}
		if err := p.err(); err != nil {
			return nil, err
		}
		return s.d.AddCRL(req.Tenant, []byte(req.PEM))
	})
}

func (s *server) listIKESAs(w http.ResponseWriter, r *http.Request) {
	listByTenant(w, r, s.d.IKESAs, keep(IKESAOf))
}

// ipsecSAPolicy is the "policy" column of a show-ipsecsa row: the IKE
// policy of an IKE Child SA, "underlay" for a manual underlay SA, the SPs
// of a manual SA, or "-".
func ipsecSAPolicy(x daemon.IPsecSA) string {
	switch {
	case x.IKEPolicy != "":
		return x.IKEPolicy
	case x.Underlay:
		return "underlay"
	case len(x.Policies) > 0:
		return strings.Join(x.Policies, ",")
	}
	return "-"
}

// listByTenant answers a listing of the daemon's objects of the tenant
// the "tenant" query names (all when empty), each converted (and kept or
// not) by conv; an empty listing is [].
func listByTenant[T, U any](w http.ResponseWriter, r *http.Request, list func(tenant string) ([]T, error), conv func(T) (U, bool)) {
	xs, err := list(r.URL.Query().Get("tenant"))
	if err != nil {
		fail(w, err)
		return
	}
	out := []U{}
	for _, x := range xs {
		if u, ok := conv(x); ok {
			out = append(out, u)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// keep makes a conversion that keeps every object.
func keep[T, U any](f func(T) U) func(T) (U, bool) { return func(x T) (U, bool) { return f(x), true } }

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// List is a request field the CLI writes as a comma-separated list
// (`--local-ip-subnets 2001:db8:1::/64,2001:db8:2::/64`). In JSON it may be
// that string or an array of strings.
type List []string

// UnmarshalJSON accepts "a,b", ["a","b"] or null.
func (l *List) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = SplitList(s)
	case len(b) > 0 && b[0] == '[':
		var ss []string
		if err := json.Unmarshal(b, &ss); err != nil {
			return err
		}
		*l = nil
		for _, s := range ss {
			*l = append(*l, strings.TrimSpace(s))
		}
	default:
		return fmt.Errorf("want a comma-separated string or an array of strings, got %s", b)
	}
	return nil
}

// SplitList splits a comma-separated flag value; "" is the empty list.
func SplitList(s string) List {
	if strings.TrimSpace(s) == "" {
		return List{}
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// PolicyCreateRequest is POST /v2/policies (`vifsec policy create`). PSK
// and PPK travel only in requests; no response ever carries them.
// AuthMethod defaults to PSK (ONTAP's default), Mode to transport. PPK
// (a post-quantum preshared key, RFC 8784) is optional with either
// method and needs PPKID.
type PolicyCreateRequest struct {
	Tenant          string `json:"tenant"`
	Name            string `json:"name"`
	VM              string `json:"vm,omitempty"`
	LocalIPSubnets  List   `json:"local_ip_subnets"`
	RemoteIPSubnets List   `json:"remote_ip_subnets"`
	Protocols       string `json:"protocols,omitempty"`
	LocalPorts      Value  `json:"local_ports,omitempty"`
	RemotePorts     Value  `json:"remote_ports,omitempty"`
	RemoteAddress   string `json:"remote_address,omitempty"`
	Mode            string `json:"mode,omitempty"`
	AuthMethod      string `json:"auth_method,omitempty"`
	PSK             string `json:"psk,omitempty"`
	PPK             string `json:"ppk,omitempty"`
	PPKID           string `json:"ppk_id,omitempty"`
	PPKRequired     bool   `json:"ppk_required,omitempty"`
	CertName        string `json:"cert_name,omitempty"`
	LocalIdentity   string `json:"local_identity,omitempty"`
	RemoteIdentity  string `json:"remote_identity,omitempty"`
	IKEProposals    List   `json:"ike_proposals,omitempty"`
	ESPProposals    List   `json:"esp_proposals,omitempty"`
	// Extensions: durations ("30s", "4h", or a number of seconds),
	// dpd_interval also "off"; dpd_action clear or restart.
	IKELifetime Value  `json:"ike_lifetime,omitempty"`
	ESPLifetime Value  `json:"esp_lifetime,omitempty"`
	DPDInterval Value  `json:"dpd_interval,omitempty"`
	DPDAction   string `json:"dpd_action,omitempty"`
	// Encapsulation (ext) is auto (ESP in UDP only behind a NAT) or udp
	// (always, strongSwan's encap=yes).
	Encapsulation string `json:"encapsulation,omitempty"`
}

// PolicyModifyRequest is PATCH /v2/policies/TENANT/NAME (`vifsec policy
// modify`): a field that is absent (null) keeps its value; an empty
// string resets an optional one (vm, protocols, ports, remote_address,
// cert_name, identities, proposals) to its default. A new ppk_id needs
// a new ppk with it; ppk_id "" removes the PPK (and, unless given,
// resets ppk_required).
type PolicyModifyRequest struct {
	VM              *string `json:"vm,omitempty"`
	LocalIPSubnets  *List   `json:"local_ip_subnets,omitempty"`
	RemoteIPSubnets *List   `json:"remote_ip_subnets,omitempty"`
	Protocols       *string `json:"protocols,omitempty"`
	LocalPorts      *Value  `json:"local_ports,omitempty"`
	RemotePorts     *Value  `json:"remote_ports,omitempty"`
	RemoteAddress   *string `json:"remote_address,omitempty"`
	Mode            *string `json:"mode,omitempty"`
	AuthMethod      *string `json:"auth_method,omitempty"`
	PSK             *string `json:"psk,omitempty"`
	PPK             *string `json:"ppk,omitempty"`
	PPKID           *string `json:"ppk_id,omitempty"`
	PPKRequired     *bool   `json:"ppk_required,omitempty"`
	CertName        *string `json:"cert_name,omitempty"`
	LocalIdentity   *string `json:"local_identity,omitempty"`
	RemoteIdentity  *string `json:"remote_identity,omitempty"`
	IKEProposals    *List   `json:"ike_proposals,omitempty"`
	ESPProposals    *List   `json:"esp_proposals,omitempty"`
	IKELifetime     *Value  `json:"ike_lifetime,omitempty"`
	ESPLifetime     *Value  `json:"esp_lifetime,omitempty"`
	DPDInterval     *Value  `json:"dpd_interval,omitempty"`
	DPDAction       *string `json:"dpd_action,omitempty"`
	Encapsulation   *string `json:"encapsulation,omitempty"`
}

// PolicyRekeyRequest is POST /v2/policies/TENANT/NAME/rekey (`vifsec
// policy rekey`, ext): the policy's Child SAs, or with IKE its IKE SA.
type PolicyRekeyRequest struct {
	IKE bool `json:"ike"`
}

// Rekeyed answers a rekey: how many rekeys started.
type Rekeyed struct {
	Rekeyed int `json:"rekeyed"`
}

// CertificateInstallRequest is POST /v2/certificates (`vifsec certificate
// install`): PEM is the PEM text the CLI read from stdin.
type CertificateInstallRequest struct {
	Tenant   string `json:"tenant"`
	CertName string `json:"cert_name"`
	Type     string `json:"type"`
	PEM      string `json:"pem"`
}

// CACertificatesAddRequest is POST /v2/ca-certificates (`vifsec
// ca-certificate add`).
type CACertificatesAddRequest struct {
	Tenant  string `json:"tenant"`
	CACerts List   `json:"ca_certs"`
}

// CRLAddRequest is POST /v2/crls (`vifsec crl add`).
type CRLAddRequest struct {
	Tenant string `json:"tenant"`
	PEM    string `json:"pem"`
}

// Policy is an IKE policy as listed: "psk" says "set" (or "" for PKI),
// "ppk" "set" (or "" without one), never a key.
type Policy struct {
	Tenant          string   `json:"tenant"`
	Name            string   `json:"name"`
	VM              string   `json:"vm"`
	LocalIPSubnets  []string `json:"local_ip_subnets"`
	RemoteIPSubnets []string `json:"remote_ip_subnets"`
	Protocols       string   `json:"protocols"`
	LocalPorts      string   `json:"local_ports"`
	RemotePorts     string   `json:"remote_ports"`
	RemoteAddress   string   `json:"remote_address"`
	Mode            string   `json:"mode"`
	AuthMethod      string   `json:"auth_method"`
	PSK             string   `json:"psk"`
	PPK             string   `json:"ppk"`
	PPKID           string   `json:"ppk_id"`
	PPKRequired     bool     `json:"ppk_required"`
	CertName        string   `json:"cert_name"`
	LocalIdentity   string   `json:"local_identity"`
	RemoteIdentity  string   `json:"remote_identity"`
	IKEProposals    []string `json:"ike_proposals"`
	ESPProposals    []string `json:"esp_proposals"`
	// LocalAddress is where IKE speaks from for the policy (the VM's
	// address, or the uplink's underlay address); "" while it waits for
	// an uplink --vxlan-local.
	LocalAddress string `json:"local_address"`
	// Timers in force, defaults filled in ("4h", "1h", "off"), and the
	// DPD action in force (clear or restart).
	IKELifetime string `json:"ike_lifetime"`
	ESPLifetime string `json:"esp_lifetime"`
	DPDInterval string `json:"dpd_interval"`
	DPDAction   string `json:"dpd_action"`
	// Encapsulation is auto or udp (--encapsulation).
	Encapsulation string `json:"encapsulation"`
}

// Certificate is an installed certificate as listed: "private_key" says
// "set" for a server certificate, never the key.
type Certificate struct {
	Tenant     string   `json:"tenant"`
	CertName   string   `json:"cert_name"`
	Type       string   `json:"type"`
	Subject    string   `json:"subject"`
	Issuer     string   `json:"issuer"`
	Serial     string   `json:"serial"` // hex
	NotBefore  string   `json:"not_before"`
	NotAfter   string   `json:"not_after"` // RFC 3339, UTC
	Count      int      `json:"count"`
	PrivateKey string   `json:"private_key"`
	IPsecCA    bool     `json:"ipsec_ca"`
	UsedBy     []string `json:"used_by"`
}

// CRL is an installed certificate revocation list as listed.
type CRL struct {
	Tenant     string `json:"tenant"`
	CACert     string `json:"ca_cert"`
	Issuer     string `json:"issuer"`
	Number     string `json:"number"`
	ThisUpdate string `json:"this_update"`
	NextUpdate string `json:"next_update"`
	Revoked    int    `json:"revoked"`
}

// IKESA is one row of `vifsec show-ikesa`. SPIs are 16 hex digits without
// 0x, as ONTAP prints them.
type IKESA struct {
	Tenant        string `json:"tenant"`
	Policy        string `json:"policy"`
	VM            string `json:"vm"`
	LocalAddress  string `json:"local_address"`
	RemoteAddress string `json:"remote_address"`
	InitiatorSPI  string `json:"initiator_spi"`
	ResponderSPI  string `json:"responder_spi"`
	Initiator     bool   `json:"initiator"`
	State         string `json:"state"`
	Suite         string `json:"suite"`
	KeyExchanges  string `json:"key_exchanges"` // e.g. curve25519+mlkem768
	PPK           bool   `json:"ppk"`           // keys mixed with a post-quantum preshared key (RFC 8784)
	LocalIdentity string `json:"local_identity"`
	RemoteID      string `json:"remote_identity"`
	NAT           bool   `json:"nat"`
	Established   string `json:"established"`
	ChildSAs      int    `json:"child_sas"`
	// ChildSAError says why the policy's Child SA is missing on this IKE
	// SA: the peer refused it (its error notify, e.g. TS_UNACCEPTABLE,
	// or what was wrong with its answer); "" when it is up. The IKE SA
	// stands and an initiating policy retries the Child SA alone.
	ChildSAError string `json:"child_sa_error"`
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Value is a request field that the CLI writes as a flag value: in JSON it
// may be a string ("4789", "any", "true") or a bare number or boolean (4789,
// true), which is kept as its text. The daemon parses it as the flag
// would be.
type Value string

// UnmarshalJSON accepts a string, number, boolean or null.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Value(s)
	case bytes.Equal(b, []byte("null")):
		*v = ""
	case bytes.Equal(b, []byte("true")), bytes.Equal(b, []byte("false")):
		*v = Value(b)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string, number or boolean, got %s", b)
		}
		*v = Value(n)
	}
	return nil
}

// Requests. Field names are the CLI's flags with '-' written '_'.

// TenantAddRequest is POST /v2/tenants (`vifsec tenant add`).
type TenantAddRequest struct {
	Tenant        string `json:"tenant"`
	VNI           Value  `json:"vni,omitempty"`
	DefaultAction string `json:"default_action,omitempty"`
}

// VMAttachRequest is POST /v2/vms (`vifsec vm attach`).
type VMAttachRequest struct {
	VM     string   `json:"vm"`
	Tenant string   `json:"tenant"`
	Dev    string   `json:"dev"`
	Netns  string   `json:"netns,omitempty"`
	MAC    string   `json:"mac"`
	VLAN   Value    `json:"vlan,omitempty"`
	IP     []string `json:"ip,omitempty"`
	// CreateTap is --create-tap (ext).
	CreateTap Value `json:"create_tap,omitempty"`
	// Origin (ext) marks a VM attached on behalf of something other than
	// an operator: vifsec-hook sends "libvirt:DOMAIN-UUID".
	Origin string `json:"origin,omitempty"`
}

// UplinkSetRequest is PUT /v2/uplink (`vifsec uplink set`).
type UplinkSetRequest struct {
	Dev        string `json:"dev"`
	Netns      string `json:"netns,omitempty"`
	Overlay    string `json:"overlay,omitempty"`
	VXLANLocal string `json:"vxlan_local,omitempty"`
	VXLANPort  Value  `json:"vxlan_port,omitempty"`
	// Protect is --protect none|underlay (underlay only with overlay vxlan).
	Protect string `json:"protect,omitempty"`
}

// SAAddRequest is POST /v2/sa (`vifsec sa add`). Keys travel only in this
// request; no response ever carries them. Exactly one of VM (an SA of the
// VM) and Tenant (an underlay SA: ESP between VTEPs around the tenant's
// VXLAN packets) is set. SASPI is 0xHEX or "auto" (the daemon picks a
// random unused SPI and tells it in a warning).
type SAAddRequest struct {
	VM                  string `json:"vm,omitempty"`
	Tenant              string `json:"tenant,omitempty"`
	SAName              string `json:"sa_name"`
	SASource            string `json:"sa_source"`
	SADestination       string `json:"sa_destination"`
	SAMode              string `json:"sa_mode"`
	SASPI               string `json:"sa_spi"`
	EncryptionAlgorithm string `json:"encryption_algorithm"`
	EncryptionKey       string `json:"encryption_key,omitempty"`
	IntegrityAlgorithm  string `json:"integrity_algorithm"`
	IntegrityKey        string `json:"integrity_key,omitempty"`
	ReplayWindow        Value  `json:"replay_window,omitempty"`
	ESN                 Value  `json:"esn,omitempty"`
	LifetimeBytes       Value  `json:"lifetime_bytes,omitempty"`
	LifetimeSeconds     Value  `json:"lifetime_seconds,omitempty"`
	// Encapsulation is --encapsulation none|udp (an extension of esxcli):
	// none (the default) sends ESP as IP protocol 50, udp in UDP between
	// ports 4500 (RFC 3948), which lets the kernel and NICs batch it
	// (UDP GSO/GRO). Both ends of an SA must agree, as on its keys.
	Encapsulation string `json:"encapsulation,omitempty"`
}

// SPAddRequest is POST /v2/sp (`vifsec sp add`, `vifsec add`).
type SPAddRequest struct {
	VM                 string `json:"vm"`
	SPName             string `json:"sp_name"`
	SPSource           string `json:"sp_source"`
	SPDestination      string `json:"sp_destination"`
	SourcePort         Value  `json:"source_port"`
	DestinationPort    Value  `json:"destination_port"`
	UpperLayerProtocol string `json:"upper_layer_protocol"`
	FlowDirection      string `json:"flow_direction"`
	Action             string `json:"action"`
	SPMode             string `json:"sp_mode,omitempty"`
	SAName             string `json:"sa_name,omitempty"`
}

// FDBAddRequest is POST /v2/fdb (`vifsec overlay fdb add`).
type FDBAddRequest struct {
	Tenant string `json:"tenant"`
	MAC    string `json:"mac"`
	Remote string `json:"remote"`
}

// ConfigModifyRequest is PUT /v2/config (`vifsec config modify`).
type ConfigModifyRequest struct {
	IsEnabled Value `json:"is_enabled"`
}

// Responses.

// Error is the body of every response with status 4xx or 5xx.
type Error struct {
	// Status is the HTTP status; not part of the body.
	Status int `json:"-"`
	// Code is one of the Code* constants (errors.go): stable, for
	// programs to branch on.
	Code string `json:"code"`
	// Message is for the operator; it names the CLI flag at fault and
	// what it accepts. It may span several lines, one per problem.
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// ErrorBody wraps Error in responses: {"error": {...}}.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Tenant is a tenant as listed.
type Tenant struct {
	Name          string `json:"name"`
	VNI           uint32 `json:"vni"`
	DefaultAction string `json:"default_action"`
}

// VM is a VM as listed.
type VM struct {
	Name   string   `json:"name"`
	Tenant string   `json:"tenant"`
	Dev    string   `json:"dev"`
	Netns  string   `json:"netns"`
	MAC    string   `json:"mac"`
	VLAN   uint16   `json:"vlan"`
	IPs    []string `json:"ips"`
	// CreateTap: vifsec creates Dev as a tap and deletes it on detach.
	CreateTap bool `json:"create_tap,omitempty"`
	// Origin is who attached the VM: "" an operator, "libvirt:UUID" the
	// libvirt hook or reconciliation for domain UUID.
	Origin string `json:"origin,omitempty"`
	// MTU is the VM's effective MTU: the largest IP packet that fits the
	// uplink after its ESP and the overlay (0: not attached).
	MTU int `json:"mtu,omitempty"`
	// VIF is "attached" when the data path serves the VM's interface, or
	// why it does not (the device is missing, went away); "" if unknown.
	VIF string `json:"vif"`
}

// Uplink is the uplink as shown; GET /v2/uplink answers null if none is set.
type Uplink struct {
	Dev        string `json:"dev"`
	Netns      string `json:"netns"`
	Overlay    string `json:"overlay"`
	VXLANLocal string `json:"vxlan_local,omitempty"`
	VXLANPort  uint16 `json:"vxlan_port,omitempty"`
	// Protect is none or underlay.
	Protect string `json:"protect"`
	// State is "up" when the data path has the uplink's port open, "down"
	// when not (Reason says why: the device is missing, down, went away),
	// "" when no data path reports. A stored uplink whose device is
	// missing is kept, down, until the device appears.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// FDBEntry is a static VXLAN forwarding entry as listed: frames of Tenant
// to MAC go to the remote VTEP Remote.
type FDBEntry struct {
	Tenant string `json:"tenant"`
	MAC    string `json:"mac"`
	Remote string `json:"remote"`
}

// SA is an SA as listed: algorithms and key lengths, never keys. An
// underlay SA has VM "" (vlan 0, mac 00:00:00:00:00:00); Tenant is the
// underlay SA's tenant, or the tenant of the SA's VM.
type SA struct {
	Name                string     `json:"name"`
	VM                  NullString `json:"vm"` // null: an underlay SA
	Tenant              string     `json:"tenant"`
	VLAN                uint16     `json:"vlan"`
	MAC                 string     `json:"mac"`
	Source              string     `json:"source"`
	Destination         string     `json:"destination"`
	Mode                string     `json:"mode"`
	SPI                 SPI        `json:"spi"`
	Direction           NullString `json:"direction"` // null: no SP uses it, or they disagree
	EncryptionAlgorithm string     `json:"encryption_algorithm"`
	EncryptionKeyBytes  int        `json:"encryption_key_bytes"`
	IntegrityAlgorithm  string     `json:"integrity_algorithm"`
	IntegrityKeyBytes   int        `json:"integrity_key_bytes"`
	ReplayWindow        int        `json:"replay_window"` // in force: the default (1024) when none was given
	ESN                 bool       `json:"esn"`
	LifetimeBytes       uint64     `json:"lifetime_bytes"`
	LifetimeSeconds     uint64     `json:"lifetime_seconds"`
	// Encapsulation is none (ESP, IP protocol 50) or udp (ESP in UDP,
	// RFC 3948: --encapsulation udp, or IKE's NAT traversal); with udp,
	// EncapSourcePort and EncapDestinationPort are the UDP ports (4500
	// unless a NAT maps them).
	Encapsulation        string   `json:"encapsulation"`
	EncapSourcePort      uint16   `json:"encap_source_port,omitempty"`
	EncapDestinationPort uint16   `json:"encap_destination_port,omitempty"`
	UsedBy               []string `json:"used_by"`
	State                string   `json:"state"` // installed, idle, expired, refused

	// IKEPolicy is the IKE policy whose Child SA this is, managed by IKE
	// (`sa remove` refuses it); absent for a manual SA.
	IKEPolicy string `json:"ike_policy,omitempty"`
	// Refused says why the SA refuses to send (state "refused") until it
	// is replaced by an SA with a new key: vifsecd cannot prove which
	// sequence numbers it already sent under its key.
	Refused string `json:"refused,omitempty"`
}

// SP is an SP as listed.
type SP struct {
	Name               string `json:"name"`
	VM                 string `json:"vm"`
	Source             string `json:"source"`
	Destination        string `json:"destination"`
	SourcePort         *int   `json:"source_port"`      // null: any
	DestinationPort    *int   `json:"destination_port"` // null: any
	UpperLayerProtocol string `json:"upper_layer_protocol"`
	Direction          string `json:"direction"`
	Action             string `json:"action"`
	Mode               string `json:"mode"`
	SAName             string `json:"sa_name"`
	// SAMissing is set for an ipsec SP whose SA `sa remove --removeall`
	// removed: its traffic is discarded until the SA is added again.
	SAMissing bool `json:"sa_missing"`

	// Owner is "ike" for an SP derived from an IKE policy (matched
	// before the VM's own SPs; not removable by `sp remove`); absent for
	// an operator's.
	Owner string `json:"owner,omitempty"`
}

// Added answers a successful POST or PUT. Warnings are for the operator
// (the CLI prints them on stderr); the request succeeded regardless.
type Added struct {
	Warnings []string `json:"warnings"`
}

// Unprotected is an ipsec SP left without its SA.
type Unprotected struct {
	SP string `json:"sp"`
	VM string `json:"vm"`
	SA string `json:"sa"`
}

// Removed answers a successful DELETE.
type Removed struct {
	Removed []string `json:"removed"`
	// Unprotected lists, for DELETE /v2/sa?all=true, the SPs left
	// without an SA.
	Unprotected []Unprotected `json:"unprotected,omitempty"`
}

// Config is the global switch (`vifsec config show`).
type Config struct {
	IsEnabled bool `json:"is_enabled"`
}

// Stats is one VM's counters (`vifsec stats`). Drops maps every drop
// reason to its count, zeros included.
type Stats struct {
	VM         string            `json:"vm"`
	Tenant     string            `json:"tenant"`
	PacketsIn  uint64            `json:"packets_in"`
	PacketsOut uint64            `json:"packets_out"`
	BytesIn    uint64            `json:"bytes_in"`
	BytesOut   uint64            `json:"bytes_out"`
	Drops      map[string]uint64 `json:"drops"`
	SAs        []SAStats         `json:"sas"`
	// IKE datagrams on the VM's behalf: IKEIn taken from the wire for
	// vifsecd's IKE instead of the VM, IKEOut sent (NAT keepalives
	// included); ARP/ND requests sent to resolve an IKE peer's next hop,
	// and next hops learned.
	IKEIn            uint64 `json:"ike_in"`
	IKEOut           uint64 `json:"ike_out"`
	NeighborRequests uint64 `json:"neighbor_requests"`
	NeighborsLearned uint64 `json:"neighbors_learned"`
}

// UplinkStats are the counters that belong to no VM (`vifsec stats
// --uplink`, GET /v2/stats/uplink): frames received on the uplink, the
// uplink port's write errors (since it was last opened), and drops by
// reason on the uplink and in the VXLAN overlay, zeros included, and the
// UDP GSO super-frames sent and received.
type UplinkStats struct {
	FramesIn     uint64            `json:"frames_in"`
	TxErrors     uint64            `json:"tx_errors"`
	Drops        map[string]uint64 `json:"drops"`
	OverlayDrops map[string]uint64 `json:"overlay_drops"`
	UDPGSO       UDPGSOStats       `json:"udp_gso"`
}

// UDPGSOStats count UDP GSO super-frames ("trains"): TrainsSent toward
// the uplink, each joined from the ESP-in-UDP or VXLAN datagrams cut from
// one guest TSO super-frame, carrying SegmentsSent datagrams in all;
// TrainsReceived whole from the uplink and cut by vifsec into
// SegmentsReceived datagrams.
type UDPGSOStats struct {
	TrainsSent       uint64 `json:"trains_sent"`
	SegmentsSent     uint64 `json:"segments_sent"`
	TrainsReceived   uint64 `json:"trains_received"`
	SegmentsReceived uint64 `json:"segments_received"`
}

// SAStats is one SA's counters; Direction is in, out or "" if unknown.
type SAStats struct {
	Name      string            `json:"name"`
	SPI       SPI               `json:"spi"`
	Direction NullString        `json:"direction"` // null: unknown
	Packets   uint64            `json:"packets"`
	Bytes     uint64            `json:"bytes"`
	Drops     map[string]uint64 `json:"drops"`
	State     string            `json:"state"`
}

// IPsecSA is one row of `vifsec show-ipsecsa`. SPIs are null when there
// is none (the CLI prints them as ONTAP does: 8 hex digits without 0x, or
// -). An underlay SA has Policy "underlay" and VM "".
type IPsecSA struct {
	Tenant        string     `json:"tenant"`
	Policy        string     `json:"policy"`
	Policies      []string   `json:"policies"`
	VM            NullString `json:"vm"` // null: an underlay SA
	SA            string     `json:"sa"`
	LocalAddress  string     `json:"local_address"`
	RemoteAddress string     `json:"remote_address"`
	// RemotePort is the peer's UDP port of ESP in UDP (RFC 3948), 0 for
	// plain ESP. RemoteAddress and RemotePort are the peer's endpoint
	// now: after a NAT rebinding, the new one.
	RemotePort  int    `json:"remote_port"`
	InboundSPI  SPI    `json:"inbound_spi"`
	OutboundSPI SPI    `json:"outbound_spi"`
	State       string `json:"state"`
}

// VersionInfo answers GET /v2/version.
type VersionInfo struct {
	API     string `json:"api"`
	Version string `json:"version"`
	Go      string `json:"go"`
}

// Offload is one interface in `vifsec offload show`: what vifsec does on
// it and what the interface (driver or hardware) offers.
type Offload struct {
	Interface string `json:"interface"`
	Netns     string `json:"netns"`
	// Role is "vm NAME" or "uplink".
	Role string `json:"role"`
	// Uses lists what vifsec itself does on this interface.
	Uses []string `json:"uses"`
	// Offers maps each offload group (tcp-segmentation-offload,
	// generic-segmentation-offload, tx-checksumming,
	// generic-receive-offload, esp) to its state as ethtool -k shows it.
	Offers map[string]string `json:"offers"`
	// Error says why the features could not be read (interface missing).
	Error string `json:"error,omitempty"`
}

package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Overlay is how protected traffic is carried on the uplink. The zero
// value is invalid.
type Overlay uint8

const (
	OverlayInvalid Overlay = iota
	// OverlayNone puts frames onto the uplink as they are (flat L2).
	OverlayNone
	// OverlayVXLAN encapsulates them in VXLAN, VNI per tenant.
	OverlayVXLAN
)

func (o Overlay) String() string {
	switch o {
	case OverlayNone:
		return "none"
	case OverlayVXLAN:
		return "vxlan"
	}
	return fmt.Sprintf("Overlay(%d)", uint8(o))
}

// ParseOverlay parses the CLI spelling (`--overlay`): "none" or "vxlan".
func ParseOverlay(s string) (Overlay, error) {
	switch s {
	case "none":
		return OverlayNone, nil
	case "vxlan":
		return OverlayVXLAN, nil
	}
	return OverlayInvalid, fmt.Errorf("%q is not an overlay; use none or vxlan", s)
}

// MarshalText returns the CLI spelling.
func (o Overlay) MarshalText() ([]byte, error) {
	if o != OverlayNone && o != OverlayVXLAN {
		return nil, fmt.Errorf("daemon: cannot marshal %v", o)
	}
	return []byte(o.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (o *Overlay) UnmarshalText(b []byte) error {
	v, err := ParseOverlay(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// Protect is what the uplink's ESP protects. The zero value, ProtectNone,
// means vifsec's ESP protects tenant packets only (ESP inside VXLAN, by
// SPs and VM SAs).
type Protect uint8

const (
	// ProtectNone: no ESP around the overlay (the zero value).
	ProtectNone Protect = iota
	// ProtectUnderlay puts ESP between hypervisor underlay (VTEP)
	// addresses around each VXLAN packet, using the underlay SAs
	// (`vifsec sa add --tenant NAME`): one SA per remote host and tenant.
	// Only with OverlayVXLAN.
	ProtectUnderlay
)

func (p Protect) String() string {
	switch p {
	case ProtectNone:
		return "none"
	case ProtectUnderlay:
		return "underlay"
	}
	return fmt.Sprintf("Protect(%d)", uint8(p))
}

// ParseProtect parses the CLI spelling (`--protect`): "none" or "underlay".
func ParseProtect(s string) (Protect, error) {
	switch s {
	case "none":
		return ProtectNone, nil
	case "underlay":
		return ProtectUnderlay, nil
	}
	return ProtectNone, fmt.Errorf("%q is not a protection mode; use none or underlay", s)
}

// MarshalText returns the CLI spelling.
func (p Protect) MarshalText() ([]byte, error) {
	if p != ProtectNone && p != ProtectUnderlay {
		return nil, fmt.Errorf("daemon: cannot marshal %v", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (p *Protect) UnmarshalText(b []byte) error {
	v, err := ParseProtect(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// DefaultVXLANPort is the IANA VXLAN port (RFC 7348).
const DefaultVXLANPort = 4789

// Uplink is where protected traffic leaves the host. Equivalent to:
// `vifsec uplink set --dev IFNAME [--netns NS] [--overlay none|vxlan]
// [--vxlan-local ADDR] [--vxlan-port 4789] [--protect none|underlay]`.
type Uplink struct {
	Dev     string  `json:"dev"`
	Netns   string  `json:"netns,omitempty"`
	Overlay Overlay `json:"overlay"`
	// VXLANLocal is the underlay source address of VXLAN packets; it is
	// required with OverlayVXLAN and refused otherwise.
	VXLANLocal netip.Addr `json:"vxlan_local,omitzero"`
	// VXLANPort is the VXLAN UDP destination port; 0 means
	// DefaultVXLANPort. Only with OverlayVXLAN.
	VXLANPort uint16 `json:"vxlan_port,omitempty"`
	// Protect says whether ESP between VTEPs is put around each VXLAN
	// packet (ProtectUnderlay, only with OverlayVXLAN) using the
	// tenant's underlay SAs.
	Protect Protect `json:"protect,omitempty"`
}

// Validate returns nil if u can be stored, else every problem found, each
// naming its flag.
func (u *Uplink) Validate() error {
	var errs []error
	if u.Dev == "" || len(u.Dev) > 15 || u.Dev == "." || u.Dev == ".." || strings.ContainsAny(u.Dev, "/: \t\n\x00") {
		errs = append(errs, fmt.Errorf("--dev: %q is not an interface name; use 1-15 characters without '/', ':' or spaces", u.Dev))
	}
	if strings.ContainsRune(u.Netns, 0) {
		errs = append(errs, fmt.Errorf("--netns: %q contains a NUL byte", u.Netns))
	}
	switch u.Overlay {
	case OverlayNone:
		if u.VXLANLocal.IsValid() {
			errs = append(errs, fmt.Errorf("--vxlan-local is only used with --overlay vxlan"))
		}
		if u.VXLANPort != 0 {
			errs = append(errs, fmt.Errorf("--vxlan-port is only used with --overlay vxlan"))
		}
	case OverlayVXLAN:
		a := u.VXLANLocal
		switch {
		case !a.IsValid():
			errs = append(errs, fmt.Errorf("--overlay vxlan requires --vxlan-local, the underlay address VXLAN packets leave from"))
		case a.Zone() != "" || a.IsUnspecified() || a.IsMulticast():
			errs = append(errs, fmt.Errorf("--vxlan-local: %v cannot be a source address; give a unicast address of the host", a))
		}
	default:
		errs = append(errs, fmt.Errorf("--overlay: not set; use none or vxlan"))
	}
	switch u.Protect {
	case ProtectNone:
	case ProtectUnderlay:
		if u.Overlay != OverlayVXLAN {
			errs = append(errs, fmt.Errorf("--protect underlay requires --overlay vxlan: it puts ESP between VTEPs around VXLAN packets (--overlay is %v)", u.Overlay))
		}
	default:
		errs = append(errs, fmt.Errorf("--protect: %v is not a protection mode; use none or underlay", u.Protect))
	}
	return errors.Join(errs...)
}

package daemon

import (
	"encoding/json"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// The store holds JSON records. Enums are stored by their CLI names, not
// their numbers, so reordering a Go enum never changes what a stored
// record means. Every record is validated again on load.

const (
	uplinkKey = "uplink"
	configKey = "config"
)

type configRecord struct {
	IPsecEnabled bool `json:"ipsec_enabled"`
}

// saRecord is an SA as stored, keys included: the state file is mode 0600
// and these bytes are never logged. Exactly one of VM (an SA of a VM) and
// Tenant (an underlay SA, zero scope) is set.
type saRecord struct {
	VM           string      `json:"vm"`
	Tenant       string      `json:"tenant,omitempty"`
	Name         string      `json:"name"`
	VLAN         uint16      `json:"vlan"`
	MAC          tenant.MAC  `json:"mac"`
	SPI          uint32      `json:"spi"`
	Dir          string      `json:"dir,omitempty"`
	Src          netip.Addr  `json:"src"`
	Dst          netip.Addr  `json:"dst"`
	Mode         string      `json:"mode"`
	Enc          string      `json:"enc"`
	EncKey       []byte      `json:"enc_key,omitempty"`
	Integ        string      `json:"integ"`
	IntegKey     []byte      `json:"integ_key,omitempty"`
	ReplayWindow int         `json:"replay_window,omitempty"`
	ESN          bool        `json:"esn,omitempty"`
	Lifetime     sa.Lifetime `json:"lifetime"`
	// Encap is the SA's UDP encapsulation (RFC 3948); absent: plain ESP.
	Encap   *sa.UDPEncap `json:"encap,omitempty"`
	Created time.Time    `json:"created,omitzero"`
}

// saOwner is whom an SA belongs to: a VM, or (underlay SA) a tenant.
type saOwner struct {
	vm, tenant string
}

func (o saOwner) String() string {
	if o.vm != "" {
		return "VM " + o.vm
	}
	return "underlay SA of tenant " + o.tenant
}

func encodeSA(o saOwner, c *sa.Config) ([]byte, error) {
	r := saRecord{
		VM: o.vm, Tenant: o.tenant, Name: c.Name, VLAN: c.Scope.VLAN, MAC: tenant.MAC(c.Scope.MAC), SPI: c.SPI,
		Src: c.Src, Dst: c.Dst, Mode: c.Mode.String(),
		Enc: c.Enc.String(), EncKey: c.EncKey, Integ: c.Integ.String(), IntegKey: c.IntegKey,
		ReplayWindow: c.ReplayWindow, ESN: c.ESN, Lifetime: c.Lifetime, Encap: c.Encap, Created: c.Created,
	}
	if c.Dir != sa.DirInvalid {
		r.Dir = c.Dir.String()
	}
	return json.Marshal(r)
}

func decodeSA(b []byte) (o saOwner, c sa.Config, err error) {
	var r saRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return o, c, err
	}
	o = saOwner{vm: r.VM, tenant: r.Tenant}
	c = sa.Config{
		Name: r.Name, Scope: sa.Scope{VLAN: r.VLAN, MAC: header.MAC(r.MAC)}, SPI: r.SPI,
		Src: r.Src, Dst: r.Dst, EncKey: r.EncKey, IntegKey: r.IntegKey,
		ReplayWindow: r.ReplayWindow, ESN: r.ESN, Lifetime: r.Lifetime, Encap: r.Encap, Created: r.Created,
	}
	if r.Dir != "" {
		if c.Dir, err = sa.ParseDirection(r.Dir); err != nil {
			return o, c, err
		}
	}
	if c.Mode, err = sa.ParseMode(r.Mode); err != nil {
		return o, c, err
	}
	if c.Enc, err = sa.ParseEncAlg(r.Enc); err != nil {
		return o, c, err
	}
	if c.Integ, err = sa.ParseIntegAlg(r.Integ); err != nil {
		return o, c, err
	}
	return o, c, nil
}

// spRecord is an SP as stored. Seq keeps the SPD order across restarts:
// policies are matched first-added first.
type spRecord struct {
	Seq    uint64        `json:"seq"`
	Policy tenant.Policy `json:"policy"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every stored type marshals; failing means a broken invariant.
		panic(fmt.Sprintf("daemon: marshal %T: %v", v, err))
	}
	return b
}

package main

import (
	"strconv"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/libvirt"
	"github.com/vifsec/vifsec/tenant"
)

// attachRequest is the API request for b's VM.
func attachRequest(b libvirt.Binding) api.VMAttachRequest {
	v := b.VM
	r := api.VMAttachRequest{VM: v.Name, Tenant: v.Tenant, Dev: v.Dev, Netns: v.Netns, MAC: v.MAC.String(),
		VLAN: api.Value(strconv.Itoa(int(v.VLAN))), Origin: v.Origin}
	for _, a := range v.IPs {
		r.IP = append(r.IP, a.String())
	}
	return r
}

// vmOf reads a listed VM back into the model, to compare it.
func vmOf(o api.VM) (tenant.VM, error) {
	v := tenant.VM{Name: o.Name, Tenant: o.Tenant, Dev: o.Dev, Netns: o.Netns, VLAN: o.VLAN, CreateTap: o.CreateTap, Origin: o.Origin}
	m, err := tenant.ParseMAC(o.MAC)
	if err != nil {
		return v, err
	}
	v.MAC = m
	for _, s := range o.IPs {
		a, err := tenant.ParseAddr(s)
		if err != nil {
			return v, err
		}
		v.IPs = append(v.IPs, a)
	}
	return v, nil
}

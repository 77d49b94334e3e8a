// Package lab builds vifsec's namespace lab: two hypervisors ("gateways")
// joined by an uplink wire, each with tenant VMs on veth pairs, all in
// network namespaces this package creates and removes. Documentation
// addresses only (RFC 3849, RFC 5737).
//
//	acme VM a1 ──veth── ┌──────────┐                ┌──────────┐ ──veth── acme VM b1
//	(VLAN 100)          │ gateway A│ up0 ══wire══ up0│ gateway B│          (VLAN 100)
//	globex VM a2 ─veth─ │ vifsecd  │  (802.1Q, ESP)  │ vifsecd  │ ─veth─ globex VM b2
//	(VLAN 200)          └──────────┘                └──────────┘          (VLAN 200)
//
// Both tenants use the same addresses (2001:db8:1::121 ↔ ::122, 192.0.2.1 ↔
// .2): only (vlan, mac) tells them apart, which is the point.
//
// BuildTenants with PairTenants makes N such pairs with addresses of their
// own instead (the scale benchmark); StartWireGuard puts wireguard-go
// between the gateways as the benchmarks' userspace-tunnel baseline.
//
// The examples/lab/vifsec-lab program, the benchmarks and the integration
// tests use it.
package lab

// Package tenant owns the control-plane model of who vifsec protects and how,
// and the per-packet classifier that applies it:
//
//   - Tenant: a customer, its VXLAN VNI and its default action.
//   - VM: one virtual interface (VIF) of a guest, identified by (vlan, mac).
//   - Policy: a security policy (SP) of one VM, as
//     `esxcli network ip ipsec sp add` defines it, with Validate for the
//     rules that combine its flags.
//   - The operator parsers for the flags of `vifsec tenant|vm|sp ...`
//     (ParsePrefix, ParsePort, ParseProto, ParseMAC, ParseVLAN, ParseAddr,
//     ValidName). Their errors say what is accepted and read well after the
//     caller's "--flag: " prefix.
//   - The data path's classifier: ParseFlow extracts the selectors of an IP
//     packet into a Flow, IsNeighborDiscovery recognises the ICMPv6 messages
//     that always pass, SPD.Lookup finds the first matching policy, and
//     SPD.LookupFragment classifies a non-first fragment, whose ports are
//     unknown, only where every policy its datagram could match agrees
//     (RFC 4301 §7.1).
//
// It must not:
//
//   - know about SAs, keys or ESP. A Policy names its SA (SAName); the data
//     path keeps its own SA pointers aligned with the policy indices that
//     SPD.Lookup returns.
//   - do I/O or keep package-global state. Values here are plain data; an
//     SPD is immutable once compiled, so the data path swaps whole SPDs
//     (for example through an atomic.Pointer) instead of locking.
//   - allocate, lock or format on the data path: ParseFlow, Lookup,
//     LookupFragment and IsNeighborDiscovery are proven allocation-free by
//     tests, and a malformed packet makes ParseFlow return false, never
//     panic.
//   - parse packet headers itself: ParseFlow reads them through package
//     header, the one floor every layer shares, so that the classifier and
//     ESP, the offloads and the overlay cannot disagree about a packet.
//   - import anything but package sa (for Direction and Mode), package
//     header and the standard library.
package tenant

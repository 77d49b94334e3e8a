// Package daemon is vifsecd's state machine: the tenants, VMs, uplink, SAs
// (in an sa.DB), SPs, the global IPsec switch, and the IKE policies,
// certificates and CRLs that the operator has configured (their model,
// parsers and Validate are package ikeconf's, as package tenant's are the
// tenants', VMs' and SPs'), and the rules that keep them consistent. It also holds the SAs the IKE engine
// installs (memory only; see ikesa.go) and the SPs derived from them.
//
// Every change follows one path (Daemon's mutating methods):
//
//  1. validate the request completely against the current state;
//  2. commit it to the store (durable before anyone hears of it);
//  3. apply it to memory (the sa.DB and the maps here);
//  4. bump the generation and wake Watch-ers, so the data path can rebuild
//     its per-VM SPD/SA tables from Snapshot.
//
// A refused request therefore changes nothing, in memory or on disk, and a
// failed commit changes nothing either.
//
// It also keeps the outbound sequence reservations of the stored SAs
// (seqres.go): under one key no (SPI, sequence number) is sent twice,
// across restarts, crashes, moves and restored state directories. An SA
// sends only below a limit made durable first; a clean stop stores the
// exact value; a store that may be older than what was sent (restored,
// rolled back, a crash followed by a reboot, no record at all) makes its
// SAs refuse to send until re-keyed. seqres.go's comment gives the rules
// and the one case left undetected.
//
// It must not speak HTTP or parse operator strings (internal/api does,
// with the parsers of packages tenant and ikeconf; only the uplink's two
// enums, Overlay and Protect, are spelled here, as they are stored), do
// packet I/O (the data path does), or log key material.
package daemon

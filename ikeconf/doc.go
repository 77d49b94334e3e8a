// Package ikeconf owns the model of vifsec's IKE configuration, as the
// tenant package owns that of tenants, VMs and SPs:
//
//   - Policy: one IKE policy of a tenant (`vifsec policy create`), with
//     its traffic selectors (PortRange, protocol), authentication
//     (AuthMethod, identities, PSK, PPK), proposals, lifetimes and dead
//     peer detection (DPDAction), and Validate for the rules that combine
//     its flags.
//   - Certificate and CertType: an installed certificate (a server chain
//     with its private key, or CA certificates), parsed and checked from
//     PEM (ReadPEM, ParseCertificate); CRL, a CA's revocation list
//     (ParseCRL).
//   - The operator parsers and spellings of the IKE flags (ParseAuthMethod,
//     ParsePortRange, ParseProtocol, ParseDPDAction, ParseTimerValue,
//     ParseCertType, FormatTimer, ProtocolString). Their errors say what is
//     accepted and read well after the caller's "--flag: " prefix.
//
// It must not:
//
//   - look at other objects: whether a policy's tenant, VM or certificate
//     exists, which CA signed a CRL among the installed ones, which
//     policies use a certificate, are the daemon's rules (internal/daemon).
//   - store, log or keep state: values here are plain data, and the store
//     records of these objects are the daemon's. Secrets (PSK, PPK, a
//     server certificate's key) are zeroed by ClearSecrets and Zero.
//   - import the daemon, the data path, the store or netlink; only sa,
//     sa/ike (identities, proposals), tenant (names) and the standard
//     library.
package ikeconf

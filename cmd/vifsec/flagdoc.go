package main

// The documentation of every verb and flag, read by --help, the manual
// page and the shell completions (help.go). TestEveryFlagDocumented holds
// it to the verb table: a flag the parser takes without a line here fails
// the build's tests.

// flagDoc documents one flag.
type flagDoc struct {
	meaning string
	// values is what the flag accepts: a|b|c for a choice (completions
	// offer those words), or a placeholder such as NAME or 0-4094.
	values string
	// def is what applies when the flag is omitted ("" when nothing does
	// or the flag is required).
	def string
}

// flagDocs documents flags by name; verbFlagDocs overrides a name in one
// verb where it means something else there.
var flagDocs = map[string]flagDoc{
	// Objects.
	"tenant":  {meaning: "the tenant (ONTAP: -vserver); names are letters, digits, '.', '_' and '-'", values: "NAME"},
	"vm":      {meaning: "the VM binding: one virtual interface of a guest", values: "NAME"},
	"sa-name": {meaning: "the SA's name, unique per VM (per tenant for underlay SAs)", values: "NAME"},
	"sp-name": {meaning: "the SP's name, unique per VM", values: "NAME"},
	"name":    {meaning: "the IKE policy's name, unique per tenant", values: "NAME"},

	// Tenants, VMs, uplink, overlay.
	"vni":            {meaning: "VXLAN network identifier carrying the tenant's frames when the uplink has --overlay vxlan; 0 keeps the tenant on flat L2", values: "0-16777215", def: "0"},
	"default-action": {meaning: "what happens to a VM's traffic that matches no SP: none passes it clear (as ESXi does), discard drops it", values: "none|discard", def: "none"},
	"dev":            {meaning: "the host-side network interface (veth peer, tap, macvlan, VF representor)", values: "IFNAME"},
	"netns":          {meaning: "the network namespace the interface is in (a name under /run/netns)", values: "NS", def: "the daemon's own"},
	"mac":            {meaning: "the guest's MAC address on that interface", values: "MAC"},
	"vlan":           {meaning: "the VLAN the binding belongs to; 0 is untagged", values: "0-4094", def: "0"},
	"ip":             {meaning: "an address the VM may source and receive (anti-spoofing, local delivery); repeat for several; without any, every source is accepted", values: "ADDR"},
	"create-tap":     {meaning: "create --dev as a tap device and delete it on detach", values: "true|false", def: "false"},
	"overlay":        {meaning: "how tenants' frames cross the uplink: as they are (flat L2) or inside VXLAN", values: "none|vxlan", def: "none"},
	"vxlan-local":    {meaning: "this host's VTEP (underlay) address; required with --overlay vxlan", values: "ADDR"},
	"vxlan-port":     {meaning: "the VXLAN UDP destination port", values: "1-65535", def: "4789"},
	"protect":        {meaning: "underlay: ESP between the hypervisors around each tenant's VXLAN (SAs added with --tenant); none: VXLAN in clear", values: "none|underlay", def: "none"},
	"remote":         {meaning: "the remote VTEP's underlay address", values: "ADDR"},
	"to-host":        {meaning: "the fleet host the VM moves to (see vifsec fleet status)", values: "HOST"},

	// SAs (esxcli network ip ipsec sa add).
	"sa-source":            {meaning: "the SA's source address: the VM's own address for an outbound SA, the peer's for an inbound one (the direction follows)", values: "ADDR"},
	"sa-destination":       {meaning: "the SA's destination address", values: "ADDR"},
	"sa-mode":              {meaning: "ESP mode: transport protects the VM's packets as they are; tunnel wraps them in an outer header between --sa-source and --sa-destination", values: "transport|tunnel"},
	"sa-spi":               {meaning: "the SPI, unique per VM (two VMs may use the same one); 0x1-0xff are reserved; auto lets vifsec pick one and print it", values: "0xHEX|auto"},
	"encryption-algorithm": {meaning: "the ESP cipher; 3des-cbc works but is deprecated", values: "aes128-gcm|aes256-gcm|chacha20-poly1305|aes128-cbc|aes256-cbc|3des-cbc|null"},
	"encryption-key":       {meaning: "the cipher key as 0x-prefixed hex or ASCII text; AEAD keys include the 4-byte salt (aes128-gcm 20 bytes, aes256-gcm and chacha20-poly1305 36). Visible to other users in the process list: prefer --encryption-key-file", values: "KEY"},
	"encryption-key-file":  {meaning: "a file holding the cipher key (as --encryption-key takes it) on one line, or - for stdin (a prompt without echo on a terminal); unlike the flag, not visible in the process list", values: "PATH|-"},
	"integrity-key-file":   {meaning: "a file holding the integrity key on one line, or - for stdin (after the encryption key's line when both are -)", values: "PATH|-"},
	"integrity-algorithm":  {meaning: "the ESP integrity algorithm; none only with an AEAD cipher", values: "hmac-sha1|hmac-sha2-256|hmac-sha2-384|hmac-sha2-512|none"},
	"integrity-key":        {meaning: "the integrity key as 0x-prefixed hex or ASCII text. Visible to other users in the process list: prefer --integrity-key-file", values: "KEY"},
	"replay-window":        {meaning: "the anti-replay window of an inbound SA, in packets", values: "32-4096", def: "1024"},
	"esn":                  {meaning: "64-bit extended sequence numbers (RFC 4304)", values: "true|false", def: "false"},
	"lifetime-bytes":       {meaning: "hard byte lifetime: the SA expires after this many bytes", values: "N", def: "none"},
	"lifetime-seconds":     {meaning: "hard time lifetime: the SA expires this many seconds after it was added", values: "N", def: "none"},
	"encapsulation":        {meaning: "extension: how the SA's ESP travels: none as IP protocol 50, udp inside UDP between ports 4500 (RFC 3948), which the kernel and NICs can batch (UDP GSO/GRO) where they cannot batch ESP; both ends must agree", values: "none|udp", def: "none"},
	"removeall":            {meaning: "remove every one, even those in use (and say what that left unprotected)", values: "true|false", def: "false"},

	// SPs (esxcli network ip ipsec sp add).
	"sp-source":            {meaning: "source prefix the SP matches", values: "ADDR/LEN"},
	"sp-destination":       {meaning: "destination prefix the SP matches", values: "ADDR/LEN"},
	"source-port":          {meaning: "source port the SP matches (with tcp or udp)", values: "0-65535|any"},
	"destination-port":     {meaning: "destination port the SP matches (with tcp or udp; the ICMPv6 type with icmp6)", values: "0-65535|any"},
	"upper-layer-protocol": {meaning: "upper-layer protocol the SP matches", values: "any|tcp|udp|icmp6|icmp"},
	"flow-direction":       {meaning: "out: traffic the VM sends; in: traffic it receives", values: "in|out"},
	"action":               {meaning: "none passes clear, discard drops, ipsec protects with --sa-name", values: "none|discard|ipsec"},
	"sp-mode":              {meaning: "the ESP mode the SP expects of its SA", values: "transport|tunnel"},

	// Global switch and statistics.
	"is-enabled": {meaning: "turn IPsec processing on or off for every VM (off: traffic passes untouched)", values: "true|false"},
	"uplink":     {meaning: "the uplink's counters instead of the VMs'", values: "true|false", def: "false"},

	// IKE policies (ONTAP security ipsec policy).
	"local-ip-subnets":  {meaning: "local traffic selectors: the protected addresses on this side", values: "ADDR/LEN[,ADDR/LEN...]"},
	"remote-ip-subnets": {meaning: "remote traffic selectors: the protected addresses on the peer's side", values: "ADDR/LEN[,ADDR/LEN...]"},
	"protocols":         {meaning: "the protocol the Child SA carries", values: "any|tcp|udp|icmp|icmp6|N", def: "any"},
	"local-ports":       {meaning: "local port or range the Child SA carries", values: "N|N-M|any", def: "any"},
	"remote-ports":      {meaning: "remote port or range the Child SA carries", values: "N|N-M|any", def: "any"},
	"remote-address":    {meaning: "the IKE peer's address; without it the policy only responds", values: "ADDR"},
	"mode":              {meaning: "the Child SAs' ESP mode", values: "transport|tunnel", def: "transport"},
	"auth-method":       {meaning: "PSK: a pre-shared key read from a prompt (no echo) or one line of stdin, never from the command line; PKI: the certificate --cert-name", values: "PSK|PKI", def: "PSK"},
	"cert-name":         {meaning: "the certificate (installed with certificate install)", values: "NAME"},
	"local-identity":    {meaning: "the IKE identity this side presents", values: "ID", def: "the local address with PSK, the certificate's subject DN with PKI"},
	"remote-identity":   {meaning: "the IKE identity the peer must prove; ANYTHING accepts any the certificate chain proves (PKI)", values: "ID|ANYTHING", def: "any identity with PSK; required with PKI"},
	"ike-proposals":     {meaning: "IKE SA proposals in strongSwan's syntax, most preferred first", values: "LIST", def: "aes256gcm16-prfsha384-x25519,aes128gcm16-prfsha256-ecp256,aes256-sha256-modp2048"},
	"esp-proposals":     {meaning: "Child SA proposals in strongSwan's syntax (a DH group adds PFS to rekeys; keN_METHOD after it, e.g. x25519-ke1_mlkem768, adds RFC 9370 additional key exchanges, ke1_none makes one optional)", values: "LIST", def: "aes256gcm16,aes128gcm16,aes256-sha256"},
	"ike-lifetime":      {meaning: "IKE SA lifetime; rekeyed at 85-95% of it", values: "DURATION", def: "4h"},
	"esp-lifetime":      {meaning: "Child SA lifetime; rekeyed at 85-95% of it", values: "DURATION", def: "1h"},
	"dpd-interval":      {meaning: "dead peer detection: probe a silent peer this often", values: "DURATION|off", def: "off"},
	"dpd-action":        {meaning: "what to do when the peer is dead: clear its SAs, or restart negotiation", values: "clear|restart", def: "restart with --remote-address, else clear"},
	"ppk-id":            {meaning: "use a post-quantum preshared key (RFC 8784) known to both peers by this identity; the key is read like the PSK, from a prompt (no echo) or the line of stdin after the PSK's; an empty value removes the PPK", values: "ID"},
	"ppk-required":      {meaning: "true: no IKE SA without the PPK; false: a peer without one is accepted on the classic keys", values: "true|false", def: "false"},
	"ike":               {meaning: "rekey the IKE SA instead of the Child SAs", values: "true|false", def: "false"},

	// Certificates.
	"type":     {meaning: "server: this side's certificate, chain and private key (PEM on stdin); server-ca or client-ca: CA certificates", values: "server|server-ca|client-ca"},
	"ca-certs": {meaning: "CA certificates (installed with certificate install) that verify peers", values: "NAME[,NAME...]"},
}

// ikeEncapDoc is --encapsulation of an IKE policy.
var ikeEncapDoc = flagDoc{meaning: "extension: how the policy's Child SAs carry ESP: auto in UDP to port 4500 only when IKE detects a NAT (RFC 7296 §2.23); udp always, as strongSwan's encap=yes (the initiator makes the peer see a NAT), so the kernel and NICs can batch it", values: "auto|udp", def: "auto"}

// verbFlagDocs documents flags whose meaning in one verb differs from
// flagDocs'.
var verbFlagDocs = map[string]map[string]flagDoc{
	"sa add": {
		"vm":     {meaning: "the VM the SA is for", values: "NAME"},
		"tenant": {meaning: "an underlay SA between VTEP addresses, for uplink --protect underlay", values: "NAME"},
	},
	"sa remove":        {"sa-name": {meaning: "the SA to remove; refused while an SP uses it", values: "NAME"}},
	"sp remove":        {"sp-name": {meaning: "the SP to remove", values: "NAME"}},
	"sp add":           {"sa-name": {meaning: "the SA that protects the SP's traffic; required with --action ipsec", values: "NAME"}},
	"vm move":          {"dev": {meaning: "the VM's interface on the new host, if its name differs there", values: "IFNAME"}, "netns": {meaning: "the namespace of that interface on the new host", values: "NS"}},
	"stats":            {"vm": {meaning: "one VM's counters (default: every VM's)", values: "NAME"}},
	"uplink set":       {"dev": {meaning: "the host interface protected traffic leaves on (refused if it does not exist)", values: "IFNAME"}},
	"policy create":    {"encapsulation": ikeEncapDoc},
	"policy modify":    {"encapsulation": ikeEncapDoc},
	"policy rekey":     {"name": {meaning: "the IKE policy to rekey", values: "NAME"}},
	"overlay fdb list": {"tenant": {meaning: "only this tenant's entries", values: "NAME"}},
}

// verbDocs says what each verb does, in a sentence or two.
var verbDocs = map[string]string{
	"tenant add":            "Add a tenant: its VMs share a security policy database, and with --vni a VXLAN network.",
	"tenant list":           "List the tenants.",
	"tenant remove":         "Remove a tenant that has no VMs, SAs or IKE policies left.",
	"vm attach":             "Attach a VM's interface: vifsec serves it from now on, protecting what the tenant's policies say.",
	"vm list":               "List the VMs, whether their interfaces are attached, and their MTU.",
	"vm detach":             "Detach a VM: its SAs and SPs go with it.",
	"vm move":               "With a fleet store: move a VM binding, its SAs and SPs to another host, sequence numbers included.",
	"uplink set":            "Set the interface protected traffic leaves on, and the overlay it uses.",
	"uplink show":           "Show the uplink, whether it is attached, and its overlay.",
	"offload show":          "Show the offloads vifsec uses on each port (GSO, checksum, virtio-net headers).",
	"overlay fdb add":       "Add a VXLAN forwarding entry: frames of the tenant to MAC go to the remote VTEP.",
	"overlay fdb list":      "List the VXLAN forwarding entries.",
	"overlay fdb remove":    "Remove a VXLAN forwarding entry.",
	"sa add":                "Add a manual SA. Equivalent to esxcli network ip ipsec sa add, with --vm (or --tenant for an underlay SA).",
	"sa list":               "List the SAs with their state (installed, idle, expired, or why one refuses to send). Equivalent to esxcli network ip ipsec sa list.",
	"sa remove":             "Remove an SA, or all of them. Equivalent to esxcli network ip ipsec sa remove.",
	"sp add":                "Add a security policy. Equivalent to esxcli network ip ipsec sp add (also vifsec add).",
	"sp list":               "List the security policies. Equivalent to esxcli network ip ipsec sp list.",
	"sp remove":             "Remove a security policy, or all of them. Equivalent to esxcli network ip ipsec sp remove.",
	"config show":           "Show whether IPsec processing is enabled. Equivalent to ONTAP's security ipsec config show.",
	"config modify":         "Turn IPsec processing on or off. Equivalent to ONTAP's security ipsec config modify.",
	"stats":                 "Show packet, byte and drop counters per VM, per SA, or of the uplink.",
	"show-ipsecsa":          "Show the IPsec SAs, their SPIs and state. Equivalent to ONTAP's security ipsec show-ipsecsa.",
	"show-ikesa":            "Show the IKE SAs vifsec negotiated. Equivalent to ONTAP's security ipsec show-ikesa.",
	"policy create":         "Create an IKE policy: vifsec negotiates Child SAs for the traffic it selects, on the VM's behalf with --vm. Equivalent to ONTAP's security ipsec policy create.",
	"policy modify":         "Change an IKE policy; its SAs are renegotiated. Equivalent to ONTAP's security ipsec policy modify.",
	"policy show":           "List the IKE policies. Equivalent to ONTAP's security ipsec policy show.",
	"policy rekey":          "Rekey a policy's Child SAs now (make before break), or its IKE SA with --ike.",
	"policy delete":         "Delete an IKE policy; its SAs are deleted at the peer too. Equivalent to ONTAP's security ipsec policy delete.",
	"certificate install":   "Install a certificate from PEM on stdin. Equivalent to ONTAP's security certificate install.",
	"certificate show":      "List the installed certificates.",
	"certificate delete":    "Delete a certificate no policy uses.",
	"ca-certificate add":    "Trust CA certificates for verifying peers. Equivalent to ONTAP's security ipsec ca-certificate add.",
	"ca-certificate show":   "List the trusted CA certificates.",
	"ca-certificate remove": "Stop trusting a CA certificate.",
	"crl add":               "Add a certificate revocation list (PEM on stdin): peers it revokes get no SA.",
	"crl show":              "List the CRLs.",
	"fleet status":          "With a fleet store: the hosts, whether each is alive, and their VM and SA counts.",
	"completion bash":       "Print the bash completion script (source it, or install it as /usr/share/bash-completion/completions/vifsec).",
	"completion zsh":        "Print the zsh completion script (install it as _vifsec in a directory of $fpath).",
}

// docFor returns the documentation of flag name in verb v.
func docFor(v *verb, name string) (flagDoc, bool) {
	if d, ok := verbFlagDocs[v.name()][name]; ok {
		return d, true
	}
	d, ok := flagDocs[name]
	return d, ok
}

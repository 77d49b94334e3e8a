package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/vifsec/vifsec/api"
)

// The IKE verbs follow ONTAP's `security ipsec`: policy,
// certificate, ca-certificate, show-ikesa; crl and the show/delete/remove
// verbs of certificates are extensions. ONTAP's -vserver is accepted for
// --tenant. Secrets never travel on the command line: the pre-shared key
// is read from a prompt (no echo) or one line of stdin, a post-quantum
// preshared key likewise (the line after the PSK's), certificates and
// keys as PEM from stdin.

// maxStdin bounds what is read from stdin (PEM with a chain, or a PSK).
const maxStdin = 1 << 20

// maxPSKLine bounds a pre-shared key read from stdin.
const maxPSKLine = 4096

// policyFlags are the flags of policy create and modify besides --tenant
// and --name.
var policyFlags = []string{"vm", "local-ip-subnets", "remote-ip-subnets", "protocols", "local-ports", "remote-ports",
	"remote-address", "mode", "auth-method", "cert-name", "local-identity", "remote-identity", "ike-proposals", "esp-proposals",
	"ike-lifetime", "esp-lifetime", "dpd-interval", "dpd-action", "ppk-id", "ppk-required", "encapsulation"}

var ontapSynonyms = map[string]string{"vserver": "tenant"}

func ikeVerbs() []*verb {
	req := func(name string) flagDef { return flagDef{name: name, kind: flagValue, required: true} }
	opt := func(name string) flagDef { return flagDef{name: name, kind: flagValue} }
	create := []flagDef{req("tenant"), req("name"), req("local-ip-subnets"), req("remote-ip-subnets")}
	modify := []flagDef{req("tenant"), req("name")}
	for _, f := range policyFlags {
		if f != "local-ip-subnets" && f != "remote-ip-subnets" {
			create = append(create, opt(f))
		}
		modify = append(modify, opt(f))
	}
	const policyUsage = " [--vm NAME] [--protocols any|tcp|udp|icmp|icmp6|N] [--local-ports N|N-M|any] [--remote-ports N|N-M|any] [--remote-address ADDR] [--mode transport|tunnel] [--auth-method PSK|PKI] [--cert-name NAME] [--local-identity ID] [--remote-identity ID|ANYTHING] [--ike-proposals LIST] [--esp-proposals LIST]    (ext:) [--ike-lifetime DURATION] [--esp-lifetime DURATION] [--dpd-interval DURATION|off] [--dpd-action clear|restart] [--ppk-id ID] [--ppk-required true|false] [--encapsulation auto|udp]" +
		"   (ext defaults: 4h, 1h, off, restart with --remote-address else clear; durations like 30s, 5m, 1h)" +
		"   (--ppk-id: a post-quantum preshared key (RFC 8784) is read like the PSK; from stdin the PSK is the first line and the PPK the next)"
	return []*verb{
		{words: []string{"policy", "create"}, flags: create, synonyms: ontapSynonyms,
			usage: "policy create --tenant NAME --name NAME --local-ip-subnets LIST --remote-ip-subnets LIST" + policyUsage +
				"   (PSK, the default: the key is read from a prompt, or one line of stdin)",
			run: runPolicyCreate},
		{words: []string{"policy", "modify"}, flags: modify, synonyms: ontapSynonyms,
			usage: "policy modify --tenant NAME --name NAME [--local-ip-subnets LIST] [--remote-ip-subnets LIST]" + policyUsage +
				"   (--auth-method PSK reads a new key; an empty value resets an optional flag)",
			run: runPolicyModify},
		{words: []string{"policy", "show"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms,
			usage: "policy show [--tenant NAME]", run: runPolicyShow},
		{words: []string{"policy", "rekey"}, flags: []flagDef{req("tenant"), req("name"), {name: "ike", kind: flagBool}}, synonyms: ontapSynonyms,
			usage: "policy rekey --tenant NAME --name NAME [--ike]   (ext: rekey the policy's Child SAs now, make before break, or with --ike its IKE SA)",
			run:   runPolicyRekey},
		{words: []string{"policy", "delete"}, flags: []flagDef{req("tenant"), req("name")}, synonyms: ontapSynonyms,
			usage: "policy delete --tenant NAME --name NAME", run: runPolicyDelete},
		{words: []string{"certificate", "install"}, flags: []flagDef{req("tenant"), req("type"), req("cert-name")}, synonyms: ontapSynonyms,
			usage: "certificate install --tenant NAME --type server|server-ca|client-ca --cert-name NAME < PEM   (server: certificate, chain and private key; CA types: CA certificates)",
			run:   runCertificateInstall},
		{words: []string{"certificate", "show"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms,
			usage: "certificate show [--tenant NAME]", run: runCertificateShow},
		{words: []string{"certificate", "delete"}, flags: []flagDef{req("tenant"), req("cert-name")}, synonyms: ontapSynonyms,
			usage: "certificate delete --tenant NAME --cert-name NAME", run: runCertificateDelete},
		{words: []string{"ca-certificate", "add"}, flags: []flagDef{req("tenant"), req("ca-certs")}, synonyms: ontapSynonyms,
			usage: "ca-certificate add --tenant NAME --ca-certs NAME[,NAME...]", run: runCACertificateAdd},
		{words: []string{"ca-certificate", "show"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms,
			usage: "ca-certificate show [--tenant NAME]", run: runCACertificateShow},
		{words: []string{"ca-certificate", "remove"}, flags: []flagDef{req("tenant"), req("ca-certs")}, synonyms: ontapSynonyms,
			usage: "ca-certificate remove --tenant NAME --ca-certs NAME", run: runCACertificateRemove},
		{words: []string{"crl", "add"}, flags: []flagDef{req("tenant")}, synonyms: ontapSynonyms,
			usage: "crl add --tenant NAME < CRL.pem", run: runCRLAdd},
		{words: []string{"crl", "show"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms,
			usage: "crl show [--tenant NAME]", run: runCRLShow},
		{words: []string{"show-ikesa"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms,
			usage: "show-ikesa [--tenant NAME]", run: runShowIKESA},
	}
}

// isTerminal reports whether r is a terminal, and its descriptor.
func isTerminal(r io.Reader) (int, bool) {
	f, ok := r.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// readPSK reads the pre-shared key of policy name: from a prompt on the
// terminal, without echo, asked twice (as ONTAP asks to enter and
// verify it), or else one line of stdin. It never prints the key.
func (c *cli) readPSK(tenantName, name string) (string, error) {
	return c.readSecret(secretPSK, fmt.Sprintf("the preshared key for IPsec Policy %s on tenant %s", name, tenantName))
}

// readPPK reads the post-quantum preshared key of policy name as readPSK
// reads the PSK. When both are read from stdin, the PSK is the first
// line and the PPK the second.
func (c *cli) readPPK(tenantName, name, id string) (string, error) {
	return c.readSecret(secretPPK, fmt.Sprintf("the post-quantum preshared key %s for IPsec Policy %s on tenant %s", id, name, tenantName))
}

// secret names a key the CLI reads, for its messages.
type secret struct{ what, flag string }

var (
	secretPSK = secret{"pre-shared key", "--auth-method PSK"}
	secretPPK = secret{"post-quantum preshared key", "--ppk-id; after the PSK's line with --auth-method PSK"}
)

// readSecret reads one key: twice from a prompt on a terminal, else the
// next line of stdin (c.lines, shared so that a second key is the second
// line). It never prints the key.
func (c *cli) readSecret(s secret, prompt string) (string, error) {
	if fd, ok := isTerminal(c.stdin); ok {
		fmt.Fprintf(c.stderr, "Enter %s: ", prompt)
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("%s: reading the terminal: %w", s.what, err)
		}
		fmt.Fprintf(c.stderr, "Confirm the %s: ", s.what)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		defer clear(a)
		defer clear(b)
		if err != nil {
			return "", fmt.Errorf("%s: reading the terminal: %w", s.what, err)
		}
		if !bytes.Equal(a, b) {
			return "", fmt.Errorf("%s: the two entries differ; nothing changed", s.what)
		}
		if len(a) == 0 {
			return "", fmt.Errorf("%s: empty; nothing changed", s.what)
		}
		return string(a), nil
	}
	if c.lines == nil {
		c.lines = bufio.NewReaderSize(c.stdin, maxPSKLine+2)
	}
	b, err := c.lines.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		clear(b)
		return "", fmt.Errorf("%s: the line on stdin is longer than %d bytes", s.what, maxPSKLine)
	}
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("%s: reading stdin: %w", s.what, err)
	}
	line := string(b)
	clear(b)
	if len(line) > maxPSKLine+1 || (err == io.EOF && len(line) > maxPSKLine) {
		return "", fmt.Errorf("%s: the line on stdin is longer than %d bytes", s.what, maxPSKLine)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", fmt.Errorf("%s: none on stdin; give it on a prompt (a terminal) or as one line of stdin (%s)", s.what, s.flag)
	}
	return line, nil
}

// ppkRequired parses --ppk-required.
func ppkRequired(in *invocation) (*bool, error) {
	if !in.has("ppk-required") {
		return nil, nil
	}
	var b bool
	switch v := in.get("ppk-required"); v {
	case "true":
		b = true
	case "false":
	default:
		return nil, fmt.Errorf("--ppk-required: %q is not a value; use true (no IKE SA without the PPK) or false (a peer without a PPK is accepted)", v)
	}
	return &b, nil
}

// readPEM reads PEM from stdin (until EOF: Ctrl-D on a terminal).
func (c *cli) readPEM(what string) (string, error) {
	if _, ok := isTerminal(c.stdin); ok {
		fmt.Fprintf(c.stderr, "Paste %s (PEM), then press Ctrl-D:\n", what)
	}
	b, err := io.ReadAll(io.LimitReader(c.stdin, maxStdin+1))
	if err != nil {
		return "", fmt.Errorf("reading %s from stdin: %w", what, err)
	}
	if len(b) > maxStdin {
		return "", fmt.Errorf("stdin: more than %d bytes; give %s as PEM", maxStdin, what)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", fmt.Errorf("stdin is empty; give %s as PEM on stdin (e.g. < file.pem)", what)
	}
	s := string(b)
	clear(b)
	return s, nil
}

func runPolicyCreate(c *cli, in *invocation) int {
	r := api.PolicyCreateRequest{
		Tenant: in.get("tenant"), Name: in.get("name"), VM: in.get("vm"),
		LocalIPSubnets: api.SplitList(in.get("local-ip-subnets")), RemoteIPSubnets: api.SplitList(in.get("remote-ip-subnets")),
		Protocols: in.get("protocols"), LocalPorts: val(in, "local-ports"), RemotePorts: val(in, "remote-ports"),
		RemoteAddress: in.get("remote-address"), Mode: in.get("mode"), AuthMethod: in.get("auth-method"),
		CertName: in.get("cert-name"), LocalIdentity: in.get("local-identity"), RemoteIdentity: in.get("remote-identity"),
	}
	if in.has("ike-proposals") {
		r.IKEProposals = api.SplitList(in.get("ike-proposals"))
	}
	if in.has("esp-proposals") {
		r.ESPProposals = api.SplitList(in.get("esp-proposals"))
	}
	r.IKELifetime, r.ESPLifetime, r.DPDInterval = val(in, "ike-lifetime"), val(in, "esp-lifetime"), val(in, "dpd-interval")
	r.DPDAction = in.get("dpd-action")
	r.Encapsulation = in.get("encapsulation")
	req, err := ppkRequired(in)
	if err != nil {
		return c.fail(err)
	}
	if req != nil {
		r.PPKRequired = *req
	}
	if r.AuthMethod == "" || strings.EqualFold(r.AuthMethod, "PSK") {
		psk, err := c.readPSK(r.Tenant, r.Name)
		if err != nil {
			return c.fail(err)
		}
		r.PSK = psk
	}
	if r.PPKID = in.get("ppk-id"); r.PPKID != "" {
		ppk, err := c.readPPK(r.Tenant, r.Name, r.PPKID)
		if err != nil {
			return c.fail(err)
		}
		r.PPK = ppk
	}
	return c.added(c.c.CreatePolicy(c.ctx, r))
}

func runPolicyModify(c *cli, in *invocation) int {
	var r api.PolicyModifyRequest
	str := func(name string) *string {
		if !in.has(name) {
			return nil
		}
		v := in.get(name)
		return &v
	}
	list := func(name string) *api.List {
		if !in.has(name) {
			return nil
		}
		l := api.SplitList(in.get(name))
		return &l
	}
	value := func(name string) *api.Value {
		if !in.has(name) {
			return nil
		}
		v := val(in, name)
		return &v
	}
	r.VM, r.Protocols, r.RemoteAddress, r.Mode = str("vm"), str("protocols"), str("remote-address"), str("mode")
	r.AuthMethod, r.CertName, r.LocalIdentity, r.RemoteIdentity = str("auth-method"), str("cert-name"), str("local-identity"), str("remote-identity")
	r.LocalIPSubnets, r.RemoteIPSubnets = list("local-ip-subnets"), list("remote-ip-subnets")
	r.IKEProposals, r.ESPProposals = list("ike-proposals"), list("esp-proposals")
	r.LocalPorts, r.RemotePorts = value("local-ports"), value("remote-ports")
	r.IKELifetime, r.ESPLifetime, r.DPDInterval = value("ike-lifetime"), value("esp-lifetime"), value("dpd-interval")
	r.DPDAction = str("dpd-action")
	r.Encapsulation = str("encapsulation")
	var err error
	if r.PPKRequired, err = ppkRequired(in); err != nil {
		return c.fail(err)
	}
	if r.AuthMethod != nil && strings.EqualFold(*r.AuthMethod, "PSK") {
		psk, err := c.readPSK(in.get("tenant"), in.get("name"))
		if err != nil {
			return c.fail(err)
		}
		r.PSK = &psk
	}
	if r.PPKID = str("ppk-id"); r.PPKID != nil && *r.PPKID != "" {
		ppk, err := c.readPPK(in.get("tenant"), in.get("name"), *r.PPKID)
		if err != nil {
			return c.fail(err)
		}
		r.PPK = &ppk
	}
	return c.added(c.c.ModifyPolicy(c.ctx, in.get("tenant"), in.get("name"), r))
}

func runPolicyShow(c *cli, in *invocation) int {
	ps, err := c.c.Policies(c.ctx, in.get("tenant"))
	return list(c, ps, err, []string{"Tenant", "Policy", "VM", "Local-IP-Subnets", "Remote-IP-Subnets", "Protocols", "Local-Ports", "Remote-Ports",
		"Remote-Address", "Mode", "Auth-Method", "PSK", "PPK", "PPK-ID", "PPK-Required", "Cert-Name", "Local-Identity", "Remote-Identity", "IKE-Address",
		"IKE-Lifetime", "ESP-Lifetime", "DPD-Interval", "DPD-Action", "Encapsulation"},
		func(p api.Policy) []string {
			return []string{p.Tenant, p.Name, orDash(p.VM), strings.Join(p.LocalIPSubnets, ","), strings.Join(p.RemoteIPSubnets, ","),
				p.Protocols, p.LocalPorts, p.RemotePorts, orDash(p.RemoteAddress), p.Mode, p.AuthMethod, orDash(p.PSK), orDash(p.PPK), orDash(p.PPKID), ppkRequiredString(p), orDash(p.CertName),
				orDash(p.LocalIdentity), orDash(p.RemoteIdentity), orDash(p.LocalAddress),
				p.IKELifetime, p.ESPLifetime, p.DPDInterval, p.DPDAction, orDash(p.Encapsulation)}
		})
}

// ppkRequiredString is the PPK-Required column: "-" without a PPK.
func ppkRequiredString(p api.Policy) string {
	switch {
	case p.PPK == "":
		return "-"
	case p.PPKRequired:
		return "true"
	}
	return "false"
}

// runPolicyRekey is `vifsec policy rekey` (ext; strongSwan's `swanctl
// --rekey --child NAME` or `--ike NAME`).
func runPolicyRekey(c *cli, in *invocation) int {
	ikeSA := in.get("ike") == "true"
	r, err := c.c.RekeyPolicy(c.ctx, in.get("tenant"), in.get("name"), ikeSA)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(r)
		return exitOK
	}
	what := "Child SA"
	if ikeSA {
		what = "IKE SA"
	}
	if r.Rekeyed != 1 {
		what += "s"
	}
	fmt.Fprintf(c.stdout, "rekeying %d %s of policy %s (tenant %s)\n", r.Rekeyed, what, in.get("name"), in.get("tenant"))
	return exitOK
}

func runPolicyDelete(c *cli, in *invocation) int {
	return c.removed(c.c.DeletePolicy(c.ctx, in.get("tenant"), in.get("name")))
}

func runCertificateInstall(c *cli, in *invocation) int {
	what := "the CA certificates"
	if in.get("type") == "server" {
		what = "the certificate, its chain and its private key"
	}
	pem, err := c.readPEM(what)
	if err != nil {
		return c.fail(err)
	}
	return c.added(c.c.InstallCertificate(c.ctx, api.CertificateInstallRequest{
		Tenant: in.get("tenant"), CertName: in.get("cert-name"), Type: in.get("type"), PEM: pem}))
}

func (c *cli) certificates(certs []api.Certificate, err error) int {
	return list(c, certs, err, []string{"Tenant", "Cert-Name", "Type", "Subject", "Issuer", "Not-After", "Certs", "Private-Key", "IPsec-CA", "Used-By"},
		func(x api.Certificate) []string {
			ca := "-"
			if x.IPsecCA {
				ca = "yes"
			}
			return []string{x.Tenant, x.CertName, x.Type, x.Subject, x.Issuer, x.NotAfter, fmt.Sprint(x.Count), orDash(x.PrivateKey), ca, joinOrDash(x.UsedBy)}
		})
}

func runCertificateShow(c *cli, in *invocation) int {
	return c.certificates(c.c.Certificates(c.ctx, in.get("tenant")))
}

func runCertificateDelete(c *cli, in *invocation) int {
	return c.removed(c.c.DeleteCertificate(c.ctx, in.get("tenant"), in.get("cert-name")))
}

func runCACertificateAdd(c *cli, in *invocation) int {
	return c.added(c.c.AddCACertificates(c.ctx, api.CACertificatesAddRequest{Tenant: in.get("tenant"), CACerts: api.SplitList(in.get("ca-certs"))}))
}

func runCACertificateShow(c *cli, in *invocation) int {
	return c.certificates(c.c.CACertificates(c.ctx, in.get("tenant")))
}

func runCACertificateRemove(c *cli, in *invocation) int {
	return c.removed(c.c.RemoveCACertificate(c.ctx, in.get("tenant"), in.get("ca-certs")))
}

func runCRLAdd(c *cli, in *invocation) int {
	pem, err := c.readPEM("the CRL")
	if err != nil {
		return c.fail(err)
	}
	return c.added(c.c.AddCRL(c.ctx, api.CRLAddRequest{Tenant: in.get("tenant"), PEM: pem}))
}

func runCRLShow(c *cli, in *invocation) int {
	crls, err := c.c.CRLs(c.ctx, in.get("tenant"))
	return list(c, crls, err, []string{"Tenant", "CA-Cert", "Issuer", "Number", "This-Update", "Next-Update", "Revoked"},
		func(x api.CRL) []string {
			return []string{x.Tenant, x.CACert, x.Issuer, orDash(x.Number), x.ThisUpdate, orDash(x.NextUpdate), fmt.Sprint(x.Revoked)}
		})
}

func runShowIKESA(c *cli, in *invocation) int {
	rows, err := c.c.IKESAs(c.ctx, in.get("tenant"))
	code := list(c, rows, err, []string{"Tenant", "Policy", "Local-Address", "Remote-Address", "Initiator-SPI", "State", "Key-Exchanges", "PPK"},
		func(r api.IKESA) []string {
			ppk := "no"
			if r.PPK {
				ppk = "yes"
			}
			return []string{r.Tenant, r.Policy, orDash(r.LocalAddress), orDash(r.RemoteAddress), r.InitiatorSPI, r.State, orDash(r.KeyExchanges), ppk}
		})
	if code != exitOK || c.format == "json" {
		return code
	}
	// IKE SAs whose Child SA the peer refused: they stand without one.
	var notes [][]string
	for _, r := range rows {
		if r.ChildSAError != "" {
			notes = append(notes, []string{r.Tenant, r.Policy, r.InitiatorSPI, r.ChildSAError})
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(c.stdout)
		c.table([]string{"Tenant", "Policy", "Initiator-SPI", "Child-SA-Refused"}, notes)
	}
	return code
}

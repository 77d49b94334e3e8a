// Command vifsec is the vifsec operator CLI. Its sa and sp verbs are those
// of `esxcli network ip ipsec` (paste an ESXi example, replace
// `esxcli network ip ipsec` with `vifsec`, add --vm); config and
// show-ipsecsa follow ONTAP's `security ipsec`. See docs/cli.md.
//
// Exit status: 0 success, 1 request rejected (the message names the flag),
// 2 usage error, 3 daemon unreachable.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
)

const (
	exitOK          = 0
	exitRejected    = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitNotFound    = 4 // the daemon refused: what the command names does not exist
	exitExists      = 5 // the daemon refused: the name (SPI, MAC...) is taken
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type cli struct {
	c      *api.Client
	ctx    context.Context
	stdin  io.Reader     // PEM and pre-shared keys (ike.go)
	lines  *bufio.Reader // stdin read line by line (readSecret): a PSK, then a PPK
	stdout io.Writer
	stderr io.Writer
	format string
}

func run(args []string, stdout, stderr io.Writer) int {
	verbs := verbTable()
	in, err := parseArgs(verbs, args)
	if err != nil {
		var ue *usageError
		errors.As(err, &ue)
		fmt.Fprintln(stderr, "vifsec:", err)
		if ue != nil && len(ue.sub) > 0 {
			printSubVerbs(stderr, strings.Join(ue.sub[0].words[:len(ue.sub[0].words)-1], " "), ue.sub)
			return exitUsage
		}
		if ue != nil && ue.verb != nil {
			fmt.Fprintln(stderr, "usage: vifsec", ue.verb.usage)
		} else {
			fmt.Fprintln(stderr, "run vifsec --help for the commands")
		}
		return exitUsage
	}
	if in.man {
		manPage(verbs).Write(stdout)
		return exitOK
	}
	if in.vers && !in.help {
		fmt.Fprintln(stdout, buildinfo.String("vifsec"))
		return exitOK
	}
	if in.help {
		if in.verb != nil {
			printVerbHelp(stdout, in.verb)
		} else if in.prefix != nil {
			printSubVerbs(stdout, strings.Join(in.prefix, " "), subVerbs(verbs, in.prefix))
		} else {
			printHelp(stdout, verbs)
		}
		return exitOK
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := api.NewClient(api.SocketPath(in.socket))
	defer c.Close()
	c = c.ForHost(in.host) // --host (fleet.go)
	return in.verb.run(&cli{c: c, ctx: ctx, stdin: os.Stdin, stdout: stdout, stderr: stderr, format: in.format}, in)
}

func printHelp(w io.Writer, verbs []*verb) {
	fmt.Fprintln(w, "usage: vifsec [--socket PATH] [--format table|json] [--host NAME] VERB ...")
	fmt.Fprintln(w, "       vifsec VERB --help        what a command does and each of its flags")
	fmt.Fprintln(w, "       vifsec completion bash|zsh")
	fmt.Fprintln(w, "       vifsec --version")
	fmt.Fprintln(w)
	for _, v := range verbs {
		fmt.Fprintln(w, "  vifsec", v.usage)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags are written --flag value or --flag=value. The daemon is found at --socket,")
	fmt.Fprintln(w, "else $VIFSEC_SOCKET, else "+api.DefaultSocket+". With a fleet store, --host NAME")
	fmt.Fprintln(w, "makes the command about host NAME's VMs, uplink, SAs and SPs (see vifsec fleet status).")
	fmt.Fprintln(w, "Exit status: 0 ok, 1 rejected, 2 usage error, 3 daemon unreachable, 4 not found,")
	fmt.Fprintln(w, "5 already exists. With --format json an error is printed on stdout as")
	fmt.Fprintln(w, `{"error":{"code":"...","message":"..."}}, code one of invalid, bad_request,`)
	fmt.Fprintln(w, "not_found, exists, in_use, conflict, internal, unavailable, unreachable.")
}

// fail prints err and returns its exit status: on stderr, or with
// --format json as {"error":{"code","message"}} on stdout (the API's
// error body; code "unreachable" when the daemon could not be reached,
// "invalid" for input the CLI refused itself).
func (c *cli) fail(err error) int {
	code := api.ErrorCode(err)
	if code == "" {
		code = api.CodeInvalid
	}
	if c.format == "json" {
		c.json(api.ErrorBody{Error: &api.Error{Code: code, Message: err.Error()}})
	} else if code == api.CodeUnreachable {
		fmt.Fprintln(c.stderr, "vifsec:", err)
	} else {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(c.stderr, "vifsec:", line)
		}
	}
	switch code {
	case api.CodeUnreachable:
		return exitUnreachable
	case api.CodeNotFound:
		return exitNotFound
	case api.CodeExists:
		return exitExists
	}
	return exitRejected
}

func (c *cli) warn(ws []string) {
	for _, w := range ws {
		fmt.Fprintln(c.stderr, "vifsec: warning:", w)
	}
}

func (c *cli) json(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// table prints rows under headers, esxcli style (a dashed rule under each
// header), aligned.
func (c *cli) table(headers []string, rows [][]string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	rule := make([]string, len(headers))
	for i, h := range headers {
		rule[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintln(tw, strings.Join(rule, "\t"))
	for _, r := range rows {
		if len(r) != len(headers) {
			panic(fmt.Sprintf("vifsec: table row has %d columns, headers %d (%v)", len(r), len(headers), headers))
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// list finishes a listing: the objects as JSON with --format json, else a
// table of headers with one row per object.
func list[T any](c *cli, xs []T, err error, headers []string, row func(T) []string) int {
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(xs)
		return exitOK
	}
	rows := make([][]string, 0, len(xs))
	for _, x := range xs {
		rows = append(rows, row(x))
	}
	c.table(headers, rows)
	return exitOK
}

// added finishes a create or modify: warnings on stderr, the answer on
// stdout with --format json, nothing otherwise (as esxcli).
func (c *cli) added(a api.Added, err error) int {
	if err != nil {
		return c.fail(err)
	}
	c.warn(a.Warnings)
	if c.format == "json" {
		c.json(a)
	}
	return exitOK
}

func (c *cli) removed(r api.Removed, err error) int {
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(r)
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOrDash(s []string) string { return orDash(strings.Join(s, ",")) }

// portString is a listed selector port as the flag takes it: "any" for
// null.
func portString(p *int) string {
	if p == nil {
		return "any"
	}
	return strconv.Itoa(*p)
}

// ontapSPI is an SPI as ONTAP's show-ipsecsa prints it: 8 hex digits
// without 0x, or - for none.
func ontapSPI(s api.SPI) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%08x", uint32(s))
}

func val(in *invocation, name string) api.Value { return api.Value(in.get(name)) }

func verbTable() []*verb {
	req := func(name string) flagDef { return flagDef{name: name, kind: flagValue, required: true} }
	opt := func(name string) flagDef { return flagDef{name: name, kind: flagValue} }
	boolean := func(name string) flagDef { return flagDef{name: name, kind: flagBool} }

	spAdd := &verb{
		words: []string{"sp", "add"}, aliases: [][]string{{"add"}},
		flags: []flagDef{req("vm"), req("sp-source"), req("sp-destination"), req("source-port"), req("destination-port"),
			req("upper-layer-protocol"), req("flow-direction"), req("action"), req("sp-mode"), opt("sa-name"), req("sp-name")},
		usage: "sp add --vm NAME --sp-source ADDR/LEN --sp-destination ADDR/LEN --source-port 0-65535|any --destination-port 0-65535|any --upper-layer-protocol any|tcp|udp|icmp6|icmp --flow-direction in|out --action none|discard|ipsec --sp-mode transport|tunnel [--sa-name NAME] --sp-name NAME   (also: vifsec add)",
		run:   runSPAdd,
	}
	return append([]*verb{
		{words: []string{"tenant", "add"}, flags: []flagDef{req("tenant"), opt("vni"), opt("default-action")},
			usage: "tenant add --tenant NAME [--vni N] [--default-action none|discard]", run: runTenantAdd},
		{words: []string{"tenant", "list"}, usage: "tenant list", run: runTenantList},
		{words: []string{"tenant", "remove"}, flags: []flagDef{req("tenant")},
			usage: "tenant remove --tenant NAME", run: runTenantRemove},
		{words: []string{"vm", "attach"}, flags: []flagDef{req("vm"), req("tenant"), req("dev"), opt("netns"), req("mac"), opt("vlan"), {name: "ip", kind: flagRepeated}, boolean("create-tap")},
			usage: "vm attach --vm NAME --tenant NAME --dev IFNAME [--netns NS] --mac MAC [--vlan 0-4094] [--ip ADDR]... [--create-tap]", run: runVMAttach},
		{words: []string{"vm", "list"}, usage: "vm list", run: runVMList},
		{words: []string{"vm", "detach"}, flags: []flagDef{req("vm")}, usage: "vm detach --vm NAME", run: runVMDetach},
		{words: []string{"uplink", "set"}, flags: []flagDef{req("dev"), opt("netns"), opt("overlay"), opt("vxlan-local"), opt("vxlan-port"), opt("protect")},
			usage: "uplink set --dev IFNAME [--netns NS] [--overlay none|vxlan] [--vxlan-local ADDR] [--vxlan-port 4789] [--protect none|underlay]", run: runUplinkSet},
		{words: []string{"uplink", "show"}, usage: "uplink show", run: runUplinkShow},
		{words: []string{"offload", "show"}, usage: "offload show", run: runOffloadShow},
		{words: []string{"overlay", "fdb", "add"}, flags: []flagDef{req("tenant"), req("mac"), req("remote")},
			usage: "overlay fdb add --tenant NAME --mac MAC --remote ADDR", run: runFDBAdd},
		{words: []string{"overlay", "fdb", "list"}, flags: []flagDef{opt("tenant")},
			usage: "overlay fdb list [--tenant NAME]", run: runFDBList},
		{words: []string{"overlay", "fdb", "remove"}, flags: []flagDef{req("tenant"), req("mac")},
			usage: "overlay fdb remove --tenant NAME --mac MAC", run: runFDBRemove},
		{words: []string{"sa", "add"},
			flags: []flagDef{opt("vm"), opt("tenant"), req("sa-source"), req("sa-destination"), req("sa-mode"), req("sa-spi"),
				req("encryption-algorithm"), opt("encryption-key"), opt("encryption-key-file"), req("integrity-algorithm"), opt("integrity-key"),
				opt("integrity-key-file"), req("sa-name"),
				opt("replay-window"), boolean("esn"), opt("lifetime-bytes"), opt("lifetime-seconds"), opt("encapsulation")},
			oneOf: []string{"vm", "tenant"},
			usage: "sa add --vm NAME|--tenant NAME --sa-source ADDR --sa-destination ADDR --sa-mode transport|tunnel --sa-spi 0xHEX|auto --encryption-algorithm ALG [--encryption-key-file FILE|- | --encryption-key KEY] --integrity-algorithm ALG [--integrity-key-file FILE|- | --integrity-key KEY] --sa-name NAME [--replay-window N] [--esn] [--lifetime-bytes N] [--lifetime-seconds N] [--encapsulation none|udp]   (--tenant: an underlay SA between VTEP addresses, for uplink --protect underlay; a key file holds the key on one line, - reads it from stdin; a key given on the command line is visible to other users)",
			run:   runSAAdd},
		{words: []string{"sa", "list"}, usage: "sa list", run: runSAList},
		{words: []string{"sa", "remove"}, flags: []flagDef{opt("sa-name"), boolean("removeall")}, oneOf: []string{"sa-name", "removeall"},
			synonyms: map[string]string{"remove-all": "removeall"},
			usage:    "sa remove --sa-name NAME | --removeall", run: runSARemove},
		spAdd,
		{words: []string{"sp", "list"}, aliases: [][]string{{"list"}}, usage: "sp list   (also: vifsec list)", run: runSPList},
		{words: []string{"sp", "remove"}, aliases: [][]string{{"remove"}}, flags: []flagDef{opt("sp-name"), boolean("removeall")},
			oneOf: []string{"sp-name", "removeall"}, synonyms: map[string]string{"remove-all": "removeall"},
			hints: map[string]string{"sa-name": "an SP is removed by --sp-name NAME (an ESXi example writes --sa-name there by mistake)"},
			usage: "sp remove --sp-name NAME | --removeall   (also: vifsec remove)", run: runSPRemove},
		{words: []string{"config", "show"}, usage: "config show", run: runConfigShow},
		{words: []string{"config", "modify"}, flags: []flagDef{req("is-enabled")}, usage: "config modify --is-enabled true|false", run: runConfigModify},
		{words: []string{"stats"}, flags: []flagDef{opt("vm"), boolean("uplink")}, usage: "stats [--vm NAME | --uplink]", run: runStats},
		{words: []string{"show-ipsecsa"}, flags: []flagDef{opt("tenant")}, synonyms: ontapSynonyms, usage: "show-ipsecsa [--tenant NAME]", run: runShowIPsecSA},
	}, slices.Concat(ikeVerbs(), fleetVerbs(), completionVerbs())...) // ike.go, fleet.go, help.go
}

func runTenantAdd(c *cli, in *invocation) int {
	return c.added(c.c.AddTenant(c.ctx, api.TenantAddRequest{Tenant: in.get("tenant"), VNI: val(in, "vni"), DefaultAction: in.get("default-action")}))
}

func runTenantList(c *cli, in *invocation) int {
	ts, err := c.c.Tenants(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(ts)
		return exitOK
	}
	var rows [][]string
	for _, t := range ts {
		vni := "-"
		if t.VNI != 0 {
			vni = fmt.Sprint(t.VNI)
		}
		rows = append(rows, []string{t.Name, vni, t.DefaultAction})
	}
	c.table([]string{"Name", "VNI", "Default Action"}, rows)
	return exitOK
}

func runTenantRemove(c *cli, in *invocation) int {
	return c.removed(c.c.RemoveTenant(c.ctx, in.get("tenant")))
}

func runVMAttach(c *cli, in *invocation) int {
	return c.added(c.c.AttachVM(c.ctx, api.VMAttachRequest{VM: in.get("vm"), Tenant: in.get("tenant"), Dev: in.get("dev"),
		Netns: in.get("netns"), MAC: in.get("mac"), VLAN: val(in, "vlan"), IP: in.values["ip"], CreateTap: val(in, "create-tap")}))
}

func runVMList(c *cli, in *invocation) int {
	vms, err := c.c.VMs(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(vms)
		return exitOK
	}
	var rows [][]string
	for _, v := range vms {
		mtu := "-"
		if v.MTU > 0 {
			mtu = fmt.Sprint(v.MTU)
		}
		rows = append(rows, []string{v.Name, v.Tenant, v.Dev, orDash(v.Netns), v.MAC, fmt.Sprint(v.VLAN), joinOrDash(v.IPs), mtu, orDash(v.VIF)})
	}
	c.table([]string{"Name", "Tenant", "Dev", "Netns", "MAC", "VLAN", "IPs", "MTU", "VIF"}, rows)
	return exitOK
}

func runVMDetach(c *cli, in *invocation) int { return c.removed(c.c.DetachVM(c.ctx, in.get("vm"))) }

func runUplinkSet(c *cli, in *invocation) int {
	return c.added(c.c.SetUplink(c.ctx, api.UplinkSetRequest{Dev: in.get("dev"), Netns: in.get("netns"), Overlay: in.get("overlay"),
		VXLANLocal: in.get("vxlan-local"), VXLANPort: val(in, "vxlan-port"), Protect: in.get("protect")}))
}

func runUplinkShow(c *cli, in *invocation) int {
	u, err := c.c.Uplink(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(u)
		return exitOK
	}
	if u == nil {
		fmt.Fprintln(c.stdout, "No uplink set (vifsec uplink set --dev IFNAME).")
		return exitOK
	}
	fmt.Fprintf(c.stdout, "Device: %s\nNetns: %s\nOverlay: %s\n", u.Dev, orDash(u.Netns), u.Overlay)
	if u.Overlay == "vxlan" {
		fmt.Fprintf(c.stdout, "VXLAN Local: %s\nVXLAN Port: %d\n", u.VXLANLocal, u.VXLANPort)
	}
	fmt.Fprintf(c.stdout, "Protect: %s\n", orDash(u.Protect))
	if u.State != "" {
		state := u.State
		if u.Reason != "" {
			state += " (" + u.Reason + ")"
		}
		fmt.Fprintf(c.stdout, "State: %s\n", state)
	}
	return exitOK
}

func runFDBAdd(c *cli, in *invocation) int {
	return c.added(c.c.AddFDB(c.ctx, api.FDBAddRequest{Tenant: in.get("tenant"), MAC: in.get("mac"), Remote: in.get("remote")}))
}

func runFDBList(c *cli, in *invocation) int {
	es, err := c.c.FDB(c.ctx, in.get("tenant"))
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(es)
		return exitOK
	}
	var rows [][]string
	for _, e := range es {
		rows = append(rows, []string{e.Tenant, e.MAC, e.Remote})
	}
	c.table([]string{"Tenant", "MAC", "Remote"}, rows)
	return exitOK
}

func runFDBRemove(c *cli, in *invocation) int {
	return c.removed(c.c.RemoveFDB(c.ctx, in.get("tenant"), in.get("mac")))
}

func runOffloadShow(c *cli, in *invocation) int {
	rows, err := c.c.Offloads(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(rows)
		return exitOK
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.stdout, "No VMs and no uplink.")
		return exitOK
	}
	for i, r := range rows {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		fmt.Fprintf(c.stdout, "%s (%s", r.Interface, r.Role)
		if r.Netns != "" {
			fmt.Fprintf(c.stdout, ", netns %s", r.Netns)
		}
		fmt.Fprintln(c.stdout, ")")
		fmt.Fprintf(c.stdout, "  vifsec uses: %s\n", strings.Join(r.Uses, "; "))
		if r.Error != "" {
			fmt.Fprintf(c.stdout, "  interface offers: unknown (%s)\n", r.Error)
			continue
		}
		names := make([]string, 0, len(r.Offers))
		for n := range r.Offers {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintln(c.stdout, "  interface offers:")
		for _, n := range names {
			fmt.Fprintf(c.stdout, "    %s: %s\n", n, r.Offers[n])
		}
	}
	return exitOK
}

func runSAAdd(c *cli, in *invocation) int {
	encKey, integKey, usage, err := c.saKeys(in) // keyfile.go
	if usage {
		fmt.Fprintln(c.stderr, "vifsec:", err)
		fmt.Fprintln(c.stderr, "usage: vifsec", in.verb.usage)
		return exitUsage
	}
	if err != nil {
		return c.fail(err)
	}
	return c.added(c.c.AddSA(c.ctx, api.SAAddRequest{
		VM: in.get("vm"), Tenant: in.get("tenant"), SAName: in.get("sa-name"), SASource: in.get("sa-source"), SADestination: in.get("sa-destination"),
		SAMode: in.get("sa-mode"), SASPI: in.get("sa-spi"),
		EncryptionAlgorithm: in.get("encryption-algorithm"), EncryptionKey: encKey,
		IntegrityAlgorithm: in.get("integrity-algorithm"), IntegrityKey: integKey,
		ReplayWindow: val(in, "replay-window"), ESN: val(in, "esn"),
		LifetimeBytes: val(in, "lifetime-bytes"), LifetimeSeconds: val(in, "lifetime-seconds"),
		Encapsulation: in.get("encapsulation"),
	}))
}

func algWithKey(alg string, keyBytes int) string {
	if keyBytes == 0 {
		return alg
	}
	return fmt.Sprintf("%s (%d-byte key)", alg, keyBytes)
}

func runSAList(c *cli, in *invocation) int {
	sas, err := c.c.SAs(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(sas)
		return exitOK
	}
	var rows [][]string
	for _, s := range sas {
		rows = append(rows, []string{s.Name, orDash(string(s.VM)), orDash(s.Tenant), s.Source, s.Destination, s.Mode, s.SPI.String(),
			algWithKey(s.EncryptionAlgorithm, s.EncryptionKeyBytes), algWithKey(s.IntegrityAlgorithm, s.IntegrityKeyBytes),
			encapString(s), joinOrDash(s.UsedBy), s.State})
	}
	c.table([]string{"Name", "VM", "Tenant", "Source", "Destination", "Mode", "SPI", "Encryption Algorithm", "Integrity Algorithm", "Encapsulation", "Used By", "State"}, rows)
	return exitOK
}

// encapString shows an SA's encapsulation: none, udp (ports 4500), or udp
// with the ports a NAT mapped.
func encapString(s api.SA) string {
	if s.Encapsulation != "udp" || s.EncapSourcePort == 4500 && s.EncapDestinationPort == 4500 {
		return orDash(s.Encapsulation)
	}
	return fmt.Sprintf("udp %d->%d", s.EncapSourcePort, s.EncapDestinationPort)
}

func runSARemove(c *cli, in *invocation) int {
	if !in.has("removeall") {
		return c.removed(c.c.RemoveSA(c.ctx, in.get("sa-name")))
	}
	if in.get("removeall") != "true" {
		return c.fail(fmt.Errorf("--removeall: %q: write --removeall alone to remove every SA", in.get("removeall")))
	}
	r, err := c.c.RemoveAllSAs(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(r)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "Removed %d SA(s)%s\n", len(r.Removed), listSuffix(r.Removed))
	if len(r.Unprotected) == 0 {
		fmt.Fprintln(c.stdout, "No SP was left without an SA.")
		return exitOK
	}
	fmt.Fprintf(c.stdout, "%d SP(s) with --action ipsec were left without an SA; their traffic is unprotected by any SA until an SA of that name is added again:\n", len(r.Unprotected))
	var rows [][]string
	for _, u := range r.Unprotected {
		rows = append(rows, []string{u.SP, u.VM, u.SA})
	}
	c.table([]string{"SP", "VM", "Removed SA"}, rows)
	return exitOK
}

func listSuffix(names []string) string {
	if len(names) == 0 {
		return "."
	}
	return ": " + strings.Join(names, ", ")
}

func runSPAdd(c *cli, in *invocation) int {
	return c.added(c.c.AddSP(c.ctx, api.SPAddRequest{
		VM: in.get("vm"), SPName: in.get("sp-name"), SPSource: in.get("sp-source"), SPDestination: in.get("sp-destination"),
		SourcePort: val(in, "source-port"), DestinationPort: val(in, "destination-port"),
		UpperLayerProtocol: in.get("upper-layer-protocol"), FlowDirection: in.get("flow-direction"),
		Action: in.get("action"), SPMode: in.get("sp-mode"), SAName: in.get("sa-name"),
	}))
}

func runSPList(c *cli, in *invocation) int {
	sps, err := c.c.SPs(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(sps)
		return exitOK
	}
	var rows [][]string
	for _, p := range sps {
		sa := orDash(p.SAName)
		if p.SAMissing {
			sa += " (missing)"
		}
		rows = append(rows, []string{p.Name, p.VM, p.Source, p.Destination, portString(p.SourcePort), portString(p.DestinationPort),
			p.UpperLayerProtocol, p.Direction, p.Action, orDash(p.Mode), sa})
	}
	c.table([]string{"Name", "VM", "Source", "Destination", "Source Port", "Destination Port", "Upper Layer Protocol", "Direction", "Action", "Mode", "SA Name"}, rows)
	return exitOK
}

func runSPRemove(c *cli, in *invocation) int {
	if !in.has("removeall") {
		return c.removed(c.c.RemoveSP(c.ctx, in.get("sp-name")))
	}
	if in.get("removeall") != "true" {
		return c.fail(fmt.Errorf("--removeall: %q: write --removeall alone to remove every SP", in.get("removeall")))
	}
	r, err := c.c.RemoveAllSPs(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(r)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "Removed %d SP(s)%s\n", len(r.Removed), listSuffix(r.Removed))
	return exitOK
}

func runConfigShow(c *cli, in *invocation) int {
	cfg, err := c.c.Config(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(cfg)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "IPsec Enabled: %t\n", cfg.IsEnabled)
	return exitOK
}

func runConfigModify(c *cli, in *invocation) int {
	return c.added(c.c.ModifyConfig(c.ctx, api.ConfigModifyRequest{IsEnabled: val(in, "is-enabled")}))
}

func dropsString(m map[string]uint64) string {
	var parts []string
	for _, k := range sortedDropKeys(m) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return joinOrDash(parts)
}

func runStats(c *cli, in *invocation) int {
	if up, code := uplinkFlag(c, in); code != exitOK {
		return code
	} else if up {
		return runUplinkStats(c) // stats.go
	}
	st, err := c.c.Stats(c.ctx, in.get("vm"))
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(st)
		return exitOK
	}
	var vmRows, saRows [][]string
	for _, v := range st {
		vmRows = append(vmRows, []string{v.VM, v.Tenant, fmt.Sprint(v.PacketsIn), fmt.Sprint(v.PacketsOut),
			fmt.Sprint(v.BytesIn), fmt.Sprint(v.BytesOut), dropsString(v.Drops)})
		for _, s := range v.SAs {
			saRows = append(saRows, []string{s.Name, v.VM, s.SPI.String(), orDash(string(s.Direction)), fmt.Sprint(s.Packets), fmt.Sprint(s.Bytes), dropsString(s.Drops), s.State})
		}
	}
	c.table([]string{"VM", "Tenant", "Packets In", "Packets Out", "Bytes In", "Bytes Out", "Drops"}, vmRows)
	fmt.Fprintln(c.stdout)
	c.table([]string{"SA", "VM", "SPI", "Direction", "Packets", "Bytes", "Drops", "State"}, saRows)
	return c.statsExtra(st, in.get("vm") == "") // stats.go
}

func runShowIPsecSA(c *cli, in *invocation) int {
	rows, err := c.c.IPsecSAs(c.ctx, in.get("tenant"))
	return list(c, rows, err, []string{"Tenant", "Policy", "Local-Address", "Remote-Address", "Inbound-SPI", "Outbound-SPI", "State"},
		func(r api.IPsecSA) []string {
			return []string{r.Tenant, r.Policy, r.LocalAddress, r.RemoteAddress, ontapSPI(r.InboundSPI), ontapSPI(r.OutboundSPI), r.State}
		})
}

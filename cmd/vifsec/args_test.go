package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Seed examples, as pasted (esxcli network ip ipsec replaced by vifsec),
// plus --vm.
var (
	seed001SA = strings.Fields(`sa add --vm vm1
            --sa-source 2001:DB8:1::121
            --sa-destination 2001:DB8:1::122
            --sa-mode transport
            --sa-spi 0x1000
            --encryption-algorithm 3des-cbc
            --encryption-key 0x6970763672656164796c6f676f336465736362636f757432
            --integrity-algorithm hmac-sha1
            --integrity-key 0x6970763672656164796c6f67736861316f757432
            --sa-name sa_2`)
	seed000SP = strings.Fields(`add --vm vm1
       --sp-source=2001:0DB8:0001:/48
       --sp-destination=2001:0DB8:0002:/48
       --source-port=23
       --destination-port=25
       --upper-layer-protocol=tcp
       --flow-direction=out
       --action=ipsec
       --sp-mode=transport
       --sp-name sp_2`)
	// Seed 003's ONTAP examples, with "security ipsec" dropped and the
	// placeholders filled in (-vserver is accepted for --tenant).
	seed003PSK = strings.Fields(`policy create -vserver vs1 -name test34 -local-ip-subnets 192.0.2.10/32 -remote-ip-subnets 198.51.100.0/24`)
	seed003PKI = strings.Fields(`policy create -vserver vs1 -name test34 -local-ip-subnets 192.0.2.10/32 -remote-ip-subnets 198.51.100.0/24
		-local-ports 2049 -protocols tcp -auth-method PKI -cert-name my_nfs_server_cert -local-identity CN=netapp.ipsec.lif1.vs0 -remote-identity ANYTHING`)
	seed002SP = strings.Fields(`add --vm vm1
--sp-source=2001:db8:1::/64
--sp-destination=2002:db8:1::/64
--source-port=23
--destination-port=25
--upper-layer-protocol=tcp
--flow-direction=out
--action=ipsec
--sp-mode=transport
--sa-name=sa1
--sp-name=sp1`)
)

func TestParseArgs(t *testing.T) {
	verbs := verbTable()
	tests := []struct {
		name   string
		args   []string
		verb   string
		values map[string]string
		format string
		usage  string // substring of the usage error; "" means success
	}{
		{name: "seed 001 sa add", args: seed001SA, verb: "sa add", values: map[string]string{"sa-spi": "0x1000", "sa-name": "sa_2", "sa-source": "2001:DB8:1::121"}},
		{name: "seed 000 add alias", args: seed000SP, verb: "sp add", values: map[string]string{"sp-source": "2001:0DB8:0001:/48", "sp-name": "sp_2"}},
		{name: "seed 002 add", args: seed002SP, verb: "sp add", values: map[string]string{"sa-name": "sa1", "sp-mode": "transport"}},
		{name: "globals anywhere", args: []string{"--format", "json", "sa", "list", "--socket=/x.sock"}, verb: "sa list", format: "json"},
		{name: "ontap single dash", args: []string{"config", "modify", "-is-enabled", "true"}, verb: "config modify", values: map[string]string{"is-enabled": "true"}},
		{name: "removeall", args: []string{"sa", "remove", "--removeall"}, verb: "sa remove", values: map[string]string{"removeall": "true"}},
		{name: "seed 002 remove-all", args: []string{"sp", "remove", "--remove-all"}, verb: "sp remove", values: map[string]string{"removeall": "true"}},
		{name: "esn bool", args: append(slices.Clone(seed001SA), "--esn"), verb: "sa add", values: map[string]string{"esn": "true"}},
		{name: "value starting with dash via =", args: []string{"tenant", "add", "--tenant=-x"}, verb: "tenant add", values: map[string]string{"tenant": "-x"}},
		{name: "repeated ip", args: []string{"vm", "attach", "--vm", "a", "--tenant", "t", "--dev", "d", "--mac", "m", "--ip", "1", "--ip", "2"}, verb: "vm attach"},

		{name: "no verb", args: nil, usage: "no verb"},
		{name: "unknown verb", args: []string{"sa", "frob"}, usage: "unknown command"},
		{name: "unknown flag", args: []string{"sa", "list", "--bogus"}, usage: "unknown flag --bogus"},
		{name: "missing value", args: []string{"tenant", "remove", "--tenant"}, usage: "needs a value"},
		{name: "value is a flag", args: []string{"tenant", "add", "--tenant", "--vni", "1"}, usage: "needs a value"},
		{name: "missing required", args: []string{"sa", "add", "--vm", "x"}, usage: "missing --sa-source"},
		{name: "twice", args: []string{"tenant", "add", "--tenant", "a", "--tenant", "b"}, usage: "more than once"},
		{name: "remove needs one", args: []string{"sa", "remove"}, usage: "exactly one of --sa-name or --removeall"},
		{name: "remove both", args: []string{"sa", "remove", "--sa-name", "x", "--removeall"}, usage: "exactly one"},
		{name: "seed 002 sp remove --sa-name", args: []string{"sp", "remove", "--sa-name", "x"}, usage: "--sp-name"},
		{name: "bad format", args: []string{"--format", "yaml", "sa", "list"}, usage: "table or json"},
		{name: "stray argument", args: []string{"sa", "list", "--format", "json", "extra"}, usage: "unexpected argument"},
		{name: "fleet status", args: []string{"fleet", "status"}, verb: "fleet status"},
		{name: "global --host", args: []string{"--host", "b", "vm", "move", "--vm", "web", "--to-host", "c"}, verb: "vm move", values: map[string]string{"vm": "web", "to-host": "c"}},
		{name: "empty --host", args: []string{"--host=", "sa", "list"}, usage: "--host needs a host name"},
		{name: "seed 003 psk policy", args: seed003PSK, verb: "policy create", values: map[string]string{"tenant": "vs1", "name": "test34", "local-ip-subnets": "192.0.2.10/32"}},
		{name: "seed 003 pki policy", args: seed003PKI, verb: "policy create", values: map[string]string{"auth-method": "PKI", "remote-identity": "ANYTHING", "local-identity": "CN=netapp.ipsec.lif1.vs0"}},
		{name: "seed 003 ca add", args: strings.Fields("ca-certificate add -vserver svm_name -ca-certs my_ca_cert"), verb: "ca-certificate add", values: map[string]string{"tenant": "svm_name", "ca-certs": "my_ca_cert"}},
		{name: "seed 003 cert install", args: strings.Fields("certificate install -vserver svm_name -type server-ca -cert-name my_ca_cert"), verb: "certificate install", values: map[string]string{"type": "server-ca"}},
		{name: "policy modify empty value", args: []string{"policy", "modify", "--tenant", "t", "--name", "p", "--remote-address="}, verb: "policy modify", values: map[string]string{"remote-address": ""}},
		{name: "policy create needs subnets", args: []string{"policy", "create", "--tenant", "t", "--name", "p"}, usage: "missing --local-ip-subnets"},
		{name: "psk is no flag", args: []string{"policy", "create", "--tenant", "t", "--name", "p", "--local-ip-subnets", "::1", "--remote-ip-subnets", "::2", "--psk", "x"}, usage: "unknown flag --psk"},
		{name: "crl add", args: []string{"crl", "add", "--tenant", "t"}, verb: "crl add"},
		{name: "show-ikesa", args: []string{"show-ikesa", "--format", "json", "-vserver", "vs1"}, verb: "show-ikesa", format: "json", values: map[string]string{"tenant": "vs1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := parseArgs(verbs, tt.args)
			if tt.usage != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.usage) {
					t.Fatalf("err = %v, want usage error containing %q", err, tt.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.verb.name() != tt.verb {
				t.Errorf("verb %q, want %q", in.verb.name(), tt.verb)
			}
			for k, v := range tt.values {
				if in.get(k) != v {
					t.Errorf("--%s = %q, want %q", k, in.get(k), v)
				}
			}
			if tt.format != "" && in.format != tt.format {
				t.Errorf("format %q, want %q", in.format, tt.format)
			}
		})
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add(strings.Join(seed001SA, "\x00"))
	f.Add(strings.Join(seed000SP, "\x00"))
	f.Add(strings.Join(seed002SP, "\x00"))
	f.Add("sa\x00remove\x00--removeall")
	f.Add("--format=json\x00vm\x00attach\x00--ip\x00::1\x00--ip=1.2.3.4")
	f.Add("-\x00--\x00---\x00--=\x00-=x")
	f.Add("help\x00sa\x00add")
	f.Add("overlay\x00fdb\x00add\x00--tenant=t1\x00--mac\x0052:54:00:00:00:01\x00--remote\x00::1")
	f.Add("overlay\x00fdb\x00list\x00--format\x00json")
	f.Add(strings.Join(seed003PSK, "\x00"))
	f.Add(strings.Join(seed003PKI, "\x00"))
	f.Add("policy\x00modify\x00--tenant=t\x00--name=p\x00--remote-address=\x00--auth-method\x00PSK")
	f.Add("certificate\x00install\x00-vserver\x00v\x00--type\x00server\x00--cert-name\x00c")
	f.Add("ca-certificate\x00add\x00--tenant\x00t\x00--ca-certs\x00a,b")
	f.Add("crl\x00add\x00--tenant\x00t\x00--vserver\x00u")
	f.Add("show-ikesa\x00--format=json")
	verbs := verbTable()
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		orig := slices.Clone(args)
		in, err := parseArgs(verbs, args)
		if !slices.Equal(args, orig) {
			t.Fatalf("parseArgs modified its input")
		}
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) || err.Error() == "" {
				t.Fatalf("error %v is not a usage error with a message", err)
			}
			return
		}
		if in.help {
			return
		}
		if in.verb == nil {
			t.Fatal("no verb and no error")
		}
		if in.format != "table" && in.format != "json" {
			t.Fatalf("format %q accepted", in.format)
		}
		for name := range in.values {
			if in.verb.flag(name) == nil {
				t.Fatalf("value for unknown flag %q", name)
			}
		}
		for _, fd := range in.verb.flags {
			if fd.required && !in.has(fd.name) {
				t.Fatalf("required --%s missing without error", fd.name)
			}
		}
	})
}

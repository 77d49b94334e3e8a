package offloadtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/pcap"
)

// ChecksumPrefs make tshark verify IPv4 header, TCP and UDP checksums
// (it does not by default). ICMP and ICMPv6 checksums are always checked.
var ChecksumPrefs = []string{
	"-o", "ip.check_checksum:TRUE",
	"-o", "tcp.check_checksum:TRUE",
	"-o", "udp.check_checksum:TRUE",
}

// Tshark writes pkts to a capture file of link type lt in t's temporary
// directory, runs tshark on it with ChecksumPrefs and extra arguments, and
// returns the requested fields (-T fields, tab-separated) per output line.
// Checksum status fields read "1" for good, "0" for bad.
//
// It skips t if tshark is not installed, except with CI=true, where that
// fails t.
func Tshark(t testing.TB, lt pcap.LinkType, pkts [][]byte, extra []string, fields ...string) [][]string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is required in CI (Debian package tshark): make deps installs it")
		}
		t.Skip("tshark not installed; it is the independent decoder this test checks against")
	}
	path := filepath.Join(t.TempDir(), "offload.pcap")
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, lt, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range pkts {
		if err := w.WritePacket(ts.Add(time.Duration(i)*time.Millisecond), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-n", "-r", path}, ChecksumPrefs...)
	args = append(args, extra...)
	args = append(args, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows
}

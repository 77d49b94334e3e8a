package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Wire is what the capture of the uplink shows.
type Wire struct {
	Frames int
	// ESP frames per (VLAN, SPI).
	ESP map[string]int
	// Decrypted counts, per tenant, ESP frames that tshark decrypted with
	// that tenant's keys alone (an independent check of the whole path).
	Decrypted map[string]int
	// ESPByTenant counts ESP frames per tenant (by VLAN).
	ESPByTenant map[string]int
	// ClearUDP counts frames of the clear UDP flow (ClearUDPPort).
	ClearUDP int
	// Control counts ARP, ND and other link-local frames (always clear).
	Control int
	// Leaks lists any other clear IP frame: there must be none.
	Leaks []string
	// Telnet counts frames to DiscardTCPPort: there must be none.
	Telnet int
	// VXLAN counts frames inside VXLAN; ESPOutsideVXLAN ESP frames that
	// were not (with a VXLAN underlay there must be none).
	VXLAN, ESPOutsideVXLAN int
	// VXLANMode: the capture is of a VXLAN underlay (set before Analyze).
	VXLANMode bool
}

// lastOf returns the last of tshark's comma-separated values of a field
// that occurs in several layers.
func lastOf(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		return v[i+1:]
	}
	return v
}

// Analyze reads captures with tshark. vifsec sends with
// PACKET_QDISC_BYPASS, which taps on the sending interface never see, so
// each direction is captured where it is received: pass both gateways'
// captures.
func Analyze(ctx context.Context, files []string, sas []SAEntry) (*Wire, error) {
	return AnalyzeWith(ctx, files, sas, false)
}

// AnalyzeWith is Analyze; with vxlan, ESP outside VXLAN is counted apart.
func AnalyzeWith(ctx context.Context, files []string, sas []SAEntry, vxlan bool) (*Wire, error) {
	w := &Wire{ESP: map[string]int{}, Decrypted: map[string]int{}, ESPByTenant: map[string]int{}, VXLANMode: vxlan}
	for _, f := range files {
		if err := w.analyze(ctx, f, sas); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *Wire) analyze(ctx context.Context, file string, sas []SAEntry) error {
	out, err := exec.CommandContext(ctx, "tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
		"-e", "vlan.id", "-e", "esp.spi", "-e", "udp.dstport", "-e", "udp.srcport", "-e", "tcp.dstport",
		"-e", "arp.opcode", "-e", "icmpv6.type", "-e", "ipv6.dst", "-e", "ip.dst", "-e", "vxlan.vni").Output()
	if err != nil {
		return fmt.Errorf("tshark -r %s: %w", file, err)
	}
	vlanTenant, vniTenant := map[string]string{}, map[string]string{}
	for _, t := range Tenants {
		vlanTenant[strconv.Itoa(int(t.VLAN))] = t.Name
		vniTenant[strconv.Itoa(int(VNI(t.Name)))] = t.Name
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		w.Frames++
		f := strings.Split(line, "|")
		for len(f) < 10 {
			f = append(f, "")
		}
		vlan, spi, udpD, udpS, tcpD, arp, icmp6, dst6, dst4, vni := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
		tenant := vlanTenant[vlan]
		if vni != "" {
			w.VXLAN++
			tenant = vniTenant[vni]
			// tshark lists outer and inner fields: the inner ones last.
			udpD, udpS = lastOf(udpD), lastOf(udpS)
			dst4, dst6 = lastOf(dst4), lastOf(dst6)
		}
		switch {
		case spi != "":
			if vni == "" {
				w.ESP[fmt.Sprintf("vlan %s spi %s", vlan, spi)]++
			} else {
				w.ESP[fmt.Sprintf("vni %s spi %s", vni, spi)]++
			}
			w.ESPByTenant[tenant]++
			if vni == "" && w.VXLANMode {
				w.ESPOutsideVXLAN++
			}
		case udpD == strconv.Itoa(ClearUDPPort) || udpS == strconv.Itoa(ClearUDPPort):
			w.ClearUDP++
		case tcpD == strconv.Itoa(DiscardTCPPort):
			w.Telnet++
		case arp != "" || icmp6 != "" && (strings.HasPrefix(dst6, "ff02:") || strings.HasPrefix(dst6, "fe80:") || icmp6 == "135" || icmp6 == "136"):
			w.Control++
		case strings.HasPrefix(dst6, "ff02:"):
			w.Control++
		default:
			w.Leaks = append(w.Leaks, fmt.Sprintf("vlan %s dst %s%s udp %s tcp %s icmp6 %s", vlan, dst6, dst4, udpD, tcpD, icmp6))
		}
	}
	// Independent decryption, one tenant at a time: tshark keys SAs by
	// (addresses, SPI) only, which the two tenants share on purpose.
	for _, t := range Tenants {
		args := []string{"-r", file, "-n", "-o", "esp.enable_encryption_decode:TRUE",
			"-Y", fmt.Sprintf("(vlan.id == %d || vxlan.vni == %d) && esp", t.VLAN, VNI(t.Name)), "-T", "fields", "-E", "separator=|",
			"-e", "esp.spi", "-e", "udp.dstport", "-e", "tcp.dstport", "-e", "icmpv6.type", "-e", "icmp.type"}
		for _, s := range sas {
			if s.Tenant != t.Name {
				continue
			}
			fam := "IPv6"
			if s.Src.Is4() {
				fam = "IPv4"
			}
			args = append(args, "-o", fmt.Sprintf(`uat:esp_sa:"%s","%s","%s","0x%08x","AES-GCM with 16 octet ICV [RFC4106]","%s","NULL",""`,
				fam, s.Src, s.Dst, s.SPI, s.Key))
		}
		out, err := exec.CommandContext(ctx, "tshark", args...).Output()
		if err != nil {
			return fmt.Errorf("tshark decrypt (%s): %w", t.Name, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "|")
			if len(f) >= 5 && (f[1] != "" || f[2] != "" || f[3] != "" || f[4] != "") {
				w.Decrypted[t.Name]++
			}
		}
	}
	return nil
}

package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/vif"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/replay"
	"github.com/vifsec/vifsec/tenant"
)

// maxBody bounds a request body; the largest request (sa add) is < 1 KiB.
const maxBody = 1 << 20

// NewHandler returns the /v2 API on d. version is reported by
// GET /v2/version. Requests are logged at debug level without their
// bodies (an SA request carries keys).
func NewHandler(d *daemon.Daemon, log *slog.Logger, version string) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{d: d, log: log, version: version}
	mux := http.NewServeMux()
	p := "/" + Version
	mux.HandleFunc("GET "+p+"/version", s.getVersion)
	mux.HandleFunc("GET "+p+"/tenants", s.listTenants)
	mux.HandleFunc("POST "+p+"/tenants", s.addTenant)
	mux.HandleFunc("DELETE "+p+"/tenants/{name}", s.removeTenant)
	mux.HandleFunc("GET "+p+"/vms", s.listVMs)
	mux.HandleFunc("POST "+p+"/vms", s.attachVM)
	mux.HandleFunc("DELETE "+p+"/vms/{name}", s.detachVM)
	mux.HandleFunc("PUT "+p+"/vms/{name}", s.putVM)
	mux.HandleFunc("GET "+p+"/uplink", s.getUplink)
	mux.HandleFunc("PUT "+p+"/uplink", s.setUplink)
	mux.HandleFunc("GET "+p+"/sa", s.listSAs)
	mux.HandleFunc("POST "+p+"/sa", s.addSA)
	mux.HandleFunc("DELETE "+p+"/sa", s.removeAllSAs)
	mux.HandleFunc("DELETE "+p+"/sa/{name}", s.removeSA)
	mux.HandleFunc("GET "+p+"/sp", s.listSPs)
	mux.HandleFunc("POST "+p+"/sp", s.addSP)
	mux.HandleFunc("DELETE "+p+"/sp", s.removeAllSPs)
	mux.HandleFunc("DELETE "+p+"/sp/{name}", s.removeSP)
	mux.HandleFunc("GET "+p+"/fdb", s.listFDB)
	mux.HandleFunc("POST "+p+"/fdb", s.addFDB)
	mux.HandleFunc("DELETE "+p+"/fdb", s.removeFDB)
	mux.HandleFunc("GET "+p+"/config", s.getConfig)
	mux.HandleFunc("PUT "+p+"/config", s.setConfig)
	mux.HandleFunc("GET "+p+"/stats", s.getStats)
	mux.HandleFunc("GET "+p+"/stats/uplink", s.getUplinkStats) // stats.go
	mux.HandleFunc("GET "+p+"/ipsecsa", s.listIPsecSAs)
	mux.HandleFunc("GET "+p+"/offload", s.listOffloads)
	s.getRoutes(mux, p) // get.go
	s.ikeRoutes(mux, p) // ike.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "bad_request",
			Message: fmt.Sprintf("no such API endpoint: %s %s (see internal/api/README.md)", r.Method, r.URL.Path)})
	})
	return s.logged(mux)
}

type server struct {
	d       *daemon.Daemon
	log     *slog.Logger
	version string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, ErrorBody{Error: e})
}

// fail writes err, a daemon refusal or a parse error, as an API error.
func fail(w http.ResponseWriter, err error) {
	e := &Error{Message: err.Error()}
	var de *daemon.Error
	if !errors.As(err, &de) {
		// Parse errors from this package: the request's fields are wrong.
		e.Status, e.Code = http.StatusBadRequest, "invalid"
		writeError(w, e)
		return
	}
	e.Code = de.Code.String()
	switch de.Code {
	case daemon.CodeInvalid:
		e.Status = http.StatusBadRequest
	case daemon.CodeNotFound:
		e.Status = http.StatusNotFound
	case daemon.CodeExists, daemon.CodeInUse:
		e.Status = http.StatusConflict
	default:
		e.Status = http.StatusInternalServerError
	}
	writeError(w, e)
}

// decode reads a JSON request body into v, refusing unknown fields (a
// misspelt field must not be silently ignored) and trailing data.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "request body: " + err.Error()})
		return false
	}
	return true
}

func (s *server) getVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionInfo{API: Version, Version: s.version, Go: runtime.Version()})
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.tenants())
}

func (s *server) tenants() []Tenant {
	out := []Tenant{}
	for _, t := range s.d.Tenants() {
		out = append(out, Tenant{Name: t.Name, VNI: t.VNI, DefaultAction: t.DefaultAction.String()})
	}
	return out
}

func (s *server) addTenant(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *TenantAddRequest) ([]string, error) {
		t, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return nil, s.d.AddTenant(t)
	})
}

func (s *server) removeTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	removed(w, s.d.RemoveTenant(name), name)
}

// VMOf converts a tenant.VM for listing.
func VMOf(v tenant.VM) VM {
	out := VM{Name: v.Name, Tenant: v.Tenant, Dev: v.Dev, Netns: v.Netns, MAC: v.MAC.String(), VLAN: v.VLAN, IPs: []string{}, CreateTap: v.CreateTap, Origin: v.Origin}
	for _, a := range v.IPs {
		out.IPs = append(out.IPs, a.String())
	}
	return out
}

func (s *server) listVMs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.vms())
}

func (s *server) vms() []VM {
	out := []VM{}
	st, mtu := s.d.VIFStatus(), s.d.VMMTUs()
	for _, v := range s.d.VMs() {
		vm := VMOf(v)
		vm.VIF = st[v.Name]
		vm.MTU = mtu[v.Name]
		out = append(out, vm)
	}
	return out
}

func (s *server) attachVM(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *VMAttachRequest) ([]string, error) {
		v, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return nil, s.d.AttachVM(v)
	})
}

func (s *server) detachVM(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	removed(w, s.d.DetachVM(name), name)
}

func (s *server) getUplink(w http.ResponseWriter, r *http.Request) {
	u, ok := s.d.Uplink()
	if !ok {
		writeJSON(w, http.StatusOK, nil)
		return
	}
	out := Uplink{Dev: u.Dev, Netns: u.Netns, Overlay: u.Overlay.String(), VXLANPort: u.VXLANPort, Protect: u.Protect.String()}
	if u.VXLANLocal.IsValid() {
		out.VXLANLocal = u.VXLANLocal.String()
	}
	if st := s.d.UplinkState(); st.Known {
		out.State, out.Reason = "down", st.Reason
		if st.Up {
			out.State = "up"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) setUplink(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusOK, func(req *UplinkSetRequest) ([]string, error) {
		u, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return nil, s.d.SetUplink(u)
	})
}

func dirString(d sa.Direction) string {
	if d == sa.DirIn || d == sa.DirOut {
		return d.String()
	}
	return ""
}

// SAOf converts a daemon.SAInfo for listing.
func SAOf(info daemon.SAInfo) SA {
	c := info.Config
	out := SA{
		Name: c.Name, VM: NullString(info.VM), Tenant: info.Tenant, VLAN: c.Scope.VLAN, MAC: c.Scope.MAC.String(),
		Source: c.Src.String(), Destination: c.Dst.String(), Mode: c.Mode.String(),
		SPI: SPI(c.SPI), Direction: NullString(dirString(info.Dir)),
		EncryptionAlgorithm: c.Enc.String(), EncryptionKeyBytes: c.Enc.KeyLen(),
		IntegrityAlgorithm: c.Integ.String(), IntegrityKeyBytes: c.Integ.KeyLen(),
		ReplayWindow: effectiveWindow(c.ReplayWindow), ESN: c.ESN,
		LifetimeBytes: c.Lifetime.Hard.Bytes, LifetimeSeconds: c.Lifetime.Hard.Seconds,
		UsedBy: append([]string{}, info.UsedBy...), State: saState(info), IKEPolicy: info.IKEPolicy, Refused: info.Refused,
		Encapsulation: "none",
	}
	if e := c.Encap; e != nil {
		out.Encapsulation, out.EncapSourcePort, out.EncapDestinationPort = "udp", e.SrcPort, e.DstPort
	}
	return out
}

func saState(info daemon.SAInfo) string {
	switch {
	case info.Expired:
		return "expired"
	case info.Refused != "":
		return "refused"
	case info.VM == "" && info.Dir == sa.DirInvalid: // underlay SA the uplink does not use
		return "idle"
	case info.VM != "" && len(info.UsedBy) == 0:
		return "idle"
	}
	return "installed"
}

func (s *server) listSAs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.sas())
}

func (s *server) sas() []SA {
	out := []SA{}
	for _, info := range s.d.SAs() {
		out = append(out, SAOf(info))
	}
	return out
}

func (s *server) addSA(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *SAAddRequest) ([]string, error) {
		vm, cfg, err := req.Parse()
		switch {
		case err != nil:
			return nil, err
		case vm == "":
			return s.d.AddUnderlaySA(req.Tenant, cfg)
		}
		return s.d.AddSA(vm, cfg)
	})
}

func (s *server) removeSA(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	removed(w, s.d.RemoveSA(name), name)
}

// requireAll refuses a DELETE of a whole collection without ?all=true, so
// that a stray request cannot remove everything.
func requireAll(w http.ResponseWriter, r *http.Request, what string) bool {
	if r.URL.Query().Get("all") == "true" {
		return true
	}
	writeError(w, &Error{Status: http.StatusBadRequest, Code: "bad_request",
		Message: fmt.Sprintf("DELETE /%s/%s removes every %s: add ?all=true (the CLI's --removeall), or DELETE /%s/%s/NAME", Version, what, strings.ToUpper(what), Version, what)})
	return false
}

func (s *server) removeAllSAs(w http.ResponseWriter, r *http.Request) {
	if !requireAll(w, r, "sa") {
		return
	}
	removed, left, err := s.d.RemoveAllSAs()
	if err != nil {
		fail(w, err)
		return
	}
	out := Removed{Removed: append([]string{}, removed...), Unprotected: []Unprotected{}}
	for _, u := range left {
		out.Unprotected = append(out.Unprotected, Unprotected{SP: u.SP, VM: u.VM, SA: u.SA})
	}
	writeJSON(w, http.StatusOK, out)
}

// SPOf converts a daemon.SPInfo for listing.
func SPOf(info daemon.SPInfo) SP {
	p := info.Policy
	out := SP{
		Name: p.Name, VM: p.VM, Source: p.Src.String(), Destination: p.Dst.String(),
		SourcePort: portOf(p.SrcPort), DestinationPort: portOf(p.DstPort),
		UpperLayerProtocol: p.ULProto.String(), Direction: dirString(p.Direction),
		Action: p.Action.String(), SAName: p.SAName, SAMissing: info.SAMissing,
	}
	if p.Mode == sa.ModeTransport || p.Mode == sa.ModeTunnel {
		out.Mode = p.Mode.String()
	}
	return out
}

func (s *server) listSPs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.sps())
}

func (s *server) sps() []SP {
	out := []SP{}
	for _, info := range s.d.SPs() {
		out = append(out, SPOf(info))
	}
	for _, info := range s.d.IKESPs() { // derived from IKE policies (ext)
		sp := SPOf(info)
		sp.Owner = "ike"
		out = append(out, sp)
	}
	return out
}

func (s *server) addSP(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *SPAddRequest) ([]string, error) {
		p, warnings, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return warnings, s.d.AddSP(p)
	})
}

func (s *server) removeSP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	removed(w, s.d.RemoveSP(name), name)
}

func (s *server) removeAllSPs(w http.ResponseWriter, r *http.Request) {
	if !requireAll(w, r, "sp") {
		return
	}
	names, err := s.d.RemoveAllSPs()
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Removed{Removed: append([]string{}, names...)})
}

// FDBOf converts a daemon.FDBEntry for listing.
func FDBOf(e daemon.FDBEntry) FDBEntry {
	return FDBEntry{Tenant: e.Tenant, MAC: e.MAC.String(), Remote: e.Remote.String()}
}

func (s *server) listFDB(w http.ResponseWriter, r *http.Request) {
	tn := r.URL.Query().Get("tenant")
	if tn != "" && !slices.ContainsFunc(s.d.Tenants(), func(t tenant.Tenant) bool { return t.Name == tn }) {
		writeError(w, &Error{Status: http.StatusNotFound, Code: daemon.CodeNotFound.String(),
			Message: fmt.Sprintf("--tenant: no tenant named %q (see vifsec tenant list)", tn)})
		return
	}
	out := []FDBEntry{}
	for _, e := range s.d.FDB(tn) {
		out = append(out, FDBOf(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) addFDB(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusCreated, func(req *FDBAddRequest) ([]string, error) {
		e, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return nil, s.d.AddFDB(e)
	})
}

func (s *server) removeFDB(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tn := q.Get("tenant")
	var p problems
	p.required("--tenant", tn, "name the tenant (DELETE /v2/fdb?tenant=NAME&mac=MAC)")
	var mac tenant.MAC
	if ms := q.Get("mac"); p.required("--mac", ms, "give the MAC of the entry (DELETE /v2/fdb?tenant=NAME&mac=MAC)") {
		var err error
		if mac, err = tenant.ParseMAC(ms); err != nil {
			p.add("--mac", err)
		}
	}
	if err := p.err(); err != nil {
		fail(w, err)
		return
	}
	if err := s.d.RemoveFDB(tn, mac); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Removed{Removed: []string{tn + "/" + mac.String()}})
}

func (s *server) getConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Config{IsEnabled: s.d.Enabled()})
}

func (s *server) setConfig(w http.ResponseWriter, r *http.Request) {
	change(w, r, http.StatusOK, func(req *ConfigModifyRequest) ([]string, error) {
		on, err := req.Parse()
		if err != nil {
			return nil, err
		}
		return nil, s.d.SetEnabled(on)
	})
}

func dropMap(d *[drop.NumCounted]uint64) map[string]uint64 {
	m := make(map[string]uint64, drop.NumCounted-1)
	for i := drop.Reason(1); i < drop.NumCounted; i++ {
		m[i.String()] = d[i]
	}
	return m
}

func (s *server) getStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.d.Stats(r.URL.Query().Get("vm"))
	if err != nil {
		fail(w, err)
		return
	}
	out := []Stats{}
	for _, v := range st {
		o := Stats{VM: v.VM, Tenant: v.Tenant, PacketsIn: v.PacketsIn, PacketsOut: v.PacketsOut,
			BytesIn: v.BytesIn, BytesOut: v.BytesOut, Drops: dropMap(&v.Drops), SAs: []SAStats{},
			IKEIn: v.IKEIn, IKEOut: v.IKEOut, NeighborRequests: v.NeighRequests, NeighborsLearned: v.NeighLearned}
		for _, x := range v.SAs {
			state := "active"
			if x.Expired {
				state = "expired"
			}
			o.SAs = append(o.SAs, SAStats{Name: x.Name, SPI: SPI(x.SPI), Direction: NullString(dirString(x.Dir)),
				Packets: x.Packets, Bytes: x.Bytes, Drops: dropMap(&x.Drops), State: state})
		}
		out = append(out, o)
	}
	writeJSON(w, http.StatusOK, out)
}

// effectiveWindow is the replay window an SA runs with: 0 means the
// default.
func effectiveWindow(w int) int {
	if w == 0 {
		return replay.DefaultSize
	}
	return w
}

// portOf is a selector's port for listing: nil for any.
func portOf(p tenant.Port) *int {
	n, ok := p.Number()
	if !ok {
		return nil
	}
	v := int(n)
	return &v
}

func (s *server) listIPsecSAs(w http.ResponseWriter, r *http.Request) {
	rows, err := s.d.IPsecSAs(r.URL.Query().Get("tenant"))
	if err != nil {
		fail(w, err)
		return
	}
	out := []IPsecSA{}
	for _, x := range rows {
		out = append(out, IPsecSA{Tenant: x.Tenant, Policy: ipsecSAPolicy(x), Policies: append([]string{}, x.Policies...),
			VM: NullString(x.VM), SA: x.SA, LocalAddress: x.Local.String(), RemoteAddress: x.Remote.String(), RemotePort: int(x.RemotePort),
			InboundSPI: SPI(x.InboundSPI), OutboundSPI: SPI(x.OutboundSPI), State: x.State})
	}
	writeJSON(w, http.StatusOK, out)
}

// What vifsec does on each kind of interface (the data path is software).
var (
	vifUses = []string{"virtio-net headers (PACKET_VNET_HDR)", "software TSO/USO segmentation before ESP",
		"checksum completion", "MSS clamping", "ICMP too-big", "ingress coalescing (unless vifsecd --gro=false)"}
	uplinkUses = []string{"software ESP (no NIC ESP offload)", "MTU-sized frames with complete checksums"}
)

func offloadRow(dev, netns, role string, uses []string) Offload {
	o := Offload{Interface: dev, Netns: netns, Role: role, Uses: uses, Offers: map[string]string{}}
	fs, err := vif.Features(dev, netns)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	for _, g := range fs.Offloads() {
		o.Offers[g.Name] = strings.TrimPrefix(g.String(), g.Name+": ")
	}
	return o
}

func (s *server) listOffloads(w http.ResponseWriter, r *http.Request) {
	out := []Offload{}
	for _, v := range s.d.VMs() {
		out = append(out, offloadRow(v.Dev, v.Netns, "vm "+v.Name, vifUses))
	}
	if u, ok := s.d.Uplink(); ok {
		out = append(out, offloadRow(u.Dev, u.Netns, "uplink", uplinkUses))
	}
	writeJSON(w, http.StatusOK, out)
}

// change is every POST and PUT: decode a request of type R, let apply parse
// and carry it out, and answer status with its warnings, or the error.
func change[R any](w http.ResponseWriter, r *http.Request, status int, apply func(*R) ([]string, error)) {
	var req R
	if !decode(w, r, &req) {
		return
	}
	warnings, err := apply(&req)
	if err != nil {
		fail(w, err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, status, Added{Warnings: warnings})
}

// removed answers a DELETE of names: the error, or what was removed.
func removed(w http.ResponseWriter, err error, names ...string) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Removed{Removed: names})
}

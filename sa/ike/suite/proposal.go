package suite

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vifsec/vifsec/sa"
)

// IKE is one negotiated IKE SA suite: exactly one transform of each type.
// EncrKeyBits is the ENCR transform's Key Length attribute (128 or 256 for
// AES-CBC and AES-GCM-16) and 0 for ChaCha20-Poly1305, which has a fixed
// 256-bit key and never carries the attribute (RFC 7634 §4). Integ is
// IntegNone for the AEAD ciphers. AddKE[n] is the method of the
// additional key exchange ADDKE(n+1) of RFC 9370, run in an
// IKE_INTERMEDIATE exchange after IKE_SA_INIT (0: none). The zero IKE is
// invalid.
type IKE struct {
	Encr, EncrKeyBits, PRF, Integ, DH uint16
	AddKE                             [MaxAddKE]uint16
}

// Base is s without its additional key exchanges.
func (s IKE) Base() IKE {
	s.AddKE = [MaxAddKE]uint16{}
	return s
}

// HasAddKE reports whether s runs any additional key exchange.
func (s IKE) HasAddKE() bool { return s.AddKE != [MaxAddKE]uint16{} }

// KeyExchanges names the key exchanges of s in the order they run,
// joined by '+': "curve25519+mlkem768".
func (s IKE) KeyExchanges() string {
	n := DHName(s.DH)
	for _, k := range s.AddKE {
		if k != 0 {
			n += "+" + KEName(k)
		}
	}
	return n
}

func (s IKE) encr() *encrAlg { return findEncr(s.Encr, s.EncrKeyBits) }

// Valid checks that every transform of s is one this package implements
// and that they fit together (an AEAD has no integrity transform).
func (s IKE) Valid() error {
	e := s.encr()
	if e == nil {
		return fmt.Errorf("IKE encryption transform %d with key length %d is not supported; use %s",
			s.Encr, s.EncrKeyBits, ikeEncrNames())
	}
	if findPRF(s.PRF) == nil {
		return fmt.Errorf("IKE PRF transform %d is not supported; use %s", s.PRF, prfNames())
	}
	if e.aead {
		if s.Integ != IntegNone {
			return fmt.Errorf("IKE suite: %s is an AEAD and takes no integrity transform (got %d)", e.name, s.Integ)
		}
	} else if findInteg(s.Integ) == nil {
		return fmt.Errorf("IKE integrity transform %d is not supported with %s; use %s", s.Integ, e.name, integNames())
	}
	if findDH(s.DH) == nil {
		return fmt.Errorf("IKE DH group %d is not supported; use %s", s.DH, dhNames(false))
	}
	for i, k := range s.AddKE {
		if k != 0 && !validKE(k) {
			return fmt.Errorf("IKE additional key exchange ke%d method %d is not supported; use %s", i+1, k, keNames())
		}
	}
	return nil
}

// String gives s in strongSwan's proposal syntax, the canonical spelling
// ParseIKEProposal reads back: "aes128gcm16-prfsha256-modp2048",
// "aes256-sha256-ecp384" (a PRF equal to the one the integrity algorithm
// implies is left out, as strongSwan writers do). Unknown transforms print
// as their numbers.
func (s IKE) String() string {
	var parts []string
	e := s.encr()
	if e != nil {
		parts = append(parts, e.name)
	} else {
		parts = append(parts, "encr"+strconv.Itoa(int(s.Encr))+"_"+strconv.Itoa(int(s.EncrKeyBits)))
	}
	var impliedPRF uint16
	if e == nil || !e.aead || s.Integ != IntegNone {
		if i := findInteg(s.Integ); i != nil {
			parts = append(parts, i.name)
			impliedPRF = i.prf
		} else {
			parts = append(parts, "integ"+strconv.Itoa(int(s.Integ)))
		}
	}
	if p := findPRF(s.PRF); p == nil {
		parts = append(parts, "prf"+strconv.Itoa(int(s.PRF)))
	} else if p.id != impliedPRF {
		parts = append(parts, p.name)
	}
	parts = append(parts, DHName(s.DH))
	for i, k := range s.AddKE {
		if k != 0 {
			parts = append(parts, "ke"+strconv.Itoa(i+1)+"_"+KEName(k))
		}
	}
	return strings.Join(parts, "-")
}

// ESP is one negotiated Child SA suite in the ESP core's terms. DH is the
// PFS group of a CREATE_CHILD_SA exchange, 0 for none; AddKE[n] the
// method of its additional key exchange ADDKE(n+1) (RFC 9370), run in an
// IKE_FOLLOWUP_KE exchange after it (0: none; only with a DH group).
type ESP struct {
	Enc   sa.EncAlg
	Integ sa.IntegAlg
	ESN   bool
	DH    uint16
	AddKE [MaxAddKE]uint16
}

// Base is e without its additional key exchanges.
func (e ESP) Base() ESP {
	e.AddKE = [MaxAddKE]uint16{}
	return e
}

// HasAddKE reports whether e runs any additional key exchange.
func (e ESP) HasAddKE() bool { return e.AddKE != [MaxAddKE]uint16{} }

// Valid checks e against the ESP core's rules (sa.CheckSuite) and the DH
// groups this package implements.
func (e ESP) Valid() error {
	if err := sa.CheckSuite(e.Enc, e.Integ); err != nil {
		return fmt.Errorf("ESP suite: %w", err)
	}
	if e.DH != 0 && findDH(e.DH) == nil {
		return fmt.Errorf("ESP PFS group %d is not supported; use %s", e.DH, dhNames(true))
	}
	for i, k := range e.AddKE {
		if k != 0 && !validKE(k) {
			return fmt.Errorf("ESP additional key exchange ke%d method %d is not supported; use %s", i+1, k, keNames())
		}
	}
	if e.DH == 0 && e.HasAddKE() {
		return errors.New("ESP suite: additional key exchanges need a PFS group first")
	}
	return nil
}

// String gives e in strongSwan's esp_proposals syntax: "aes128gcm16",
// "aes256-sha256", "aes256gcm16-ecp384-esn". No ESN is strongSwan's default
// and is not written.
func (e ESP) String() string {
	var parts []string
	if n := espEncName(e.Enc); n != "" {
		parts = append(parts, n)
	} else {
		parts = append(parts, e.Enc.String())
	}
	if !e.Enc.IsAEAD() || e.Integ != sa.IntegNone {
		if i := integForESP(e.Integ); i != nil {
			parts = append(parts, i.name)
		} else {
			parts = append(parts, e.Integ.String())
		}
	}
	if e.DH != 0 {
		parts = append(parts, DHName(e.DH))
	}
	for i, k := range e.AddKE {
		if k != 0 {
			parts = append(parts, "ke"+strconv.Itoa(i+1)+"_"+KEName(k))
		}
	}
	if e.ESN {
		parts = append(parts, "esn")
	}
	return strings.Join(parts, "-")
}

// tokens of one proposal, sorted by kind, in the order written.
type tokens struct {
	encr  []string // canonical names
	integ []string
	prf   []string
	dh    []uint16 // 0 for "none"
	esn   []bool
	ke    [MaxAddKE][]uint16 // ke1_…ke7_: 0 for "none"
}

// addKEToken reads strongSwan's "keN_method" (N 1..7, method a key
// exchange method or "none"): n is N-1, ok false if tok is not of that
// form; err names what is wrong with one that is.
func addKEToken(tok string) (n int, id uint16, ok bool, err error) {
	if len(tok) < 4 || tok[:2] != "ke" || tok[3] != '_' || tok[2] < '0' || tok[2] > '9' {
		return 0, 0, false, nil
	}
	n = int(tok[2] - '1')
	if n < 0 || n >= MaxAddKE {
		return 0, 0, true, fmt.Errorf("additional key exchange %q: ke1 to ke7 only", tok)
	}
	m := tok[4:]
	if a, ok := aliases[m]; ok {
		m = a
	}
	switch {
	case m == "none":
		return n, 0, true, nil
	case kemByName(m) != nil:
		return n, kemByName(m).id, true, nil
	case dhByName(m) != nil:
		return n, dhByName(m).id, true, nil
	}
	return 0, 0, true, fmt.Errorf("additional key exchange %q: method %q is not supported; use %s or none", tok, tok[4:], keNames())
}

func addOnce[T comparable](l []T, v T) []T {
	if slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}

// splitProposals splits "a-b-c, d-e" into proposals of tokens, the way
// strongSwan does (proposals separated by commas, algorithms by '-',
// blanks ignored), lower-casing and resolving aliases.
func splitProposals(kind, s string, encrOK func(string) bool) ([]tokens, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s proposal is empty; write e.g. %s", kind, example(kind))
	}
	var out []tokens
	for _, p := range strings.Split(s, ",") {
		var t tokens
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("%s proposals %q: empty proposal between commas", kind, s)
		}
		for _, tok := range strings.Split(p, "-") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				return nil, fmt.Errorf("%s proposal %q: empty algorithm between dashes", kind, p)
			}
			name := lower(tok)
			if a, ok := aliases[name]; ok {
				name = a
			}
			if n, id, ok, err := addKEToken(name); ok {
				if err != nil {
					return nil, fmt.Errorf("%s proposal %q: %w", kind, p, err)
				}
				t.ke[n] = addOnce(t.ke[n], id)
				continue
			}
			if kemByName(name) != nil {
				return nil, fmt.Errorf("%s proposal %q: %s is supported as an additional key exchange only: write ke1_%s after a DH group", kind, p, name, name)
			}
			switch {
			case encrOK(name):
				t.encr = addOnce(t.encr, name)
			case name == "none":
				t.dh = addOnce(t.dh, 0)
			case name == "esn" || name == "noesn":
				t.esn = addOnce(t.esn, name == "esn")
			default:
				if integByName(name) != nil {
					t.integ = addOnce(t.integ, name)
				} else if prfByName(name) != nil {
					t.prf = addOnce(t.prf, name)
				} else if d := dhByName(name); d != nil {
					t.dh = addOnce(t.dh, d.id)
				} else {
					return nil, fmt.Errorf("%s proposal %q: algorithm %q is not supported; %s", kind, p, tok, accepted(kind))
				}
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func example(kind string) string {
	if kind == "IKE" {
		return `"aes128gcm16-prfsha256-modp2048" or "aes256-sha256-ecp384"`
	}
	return `"aes128gcm16" or "aes256-sha256-esn"`
}

func accepted(kind string) string {
	if kind == "IKE" {
		return fmt.Sprintf("use encryption %s; integrity %s; prf %s; dh %s; additional key exchanges ke1_ to ke7_ with %s or none",
			ikeEncrNames(), integNames(), prfNames(), dhNames(false), keNames())
	}
	return fmt.Sprintf("use encryption %s; integrity %s; pfs dh %s; esn, noesn",
		espEncNames(), integNames(), dhNames(true))
}

func ikeEncrNames() string {
	var n []string
	for _, e := range ikeEncrs {
		n = append(n, e.name)
	}
	return strings.Join(n, ", ")
}

func espEncNames() string {
	var n []string
	for _, a := range sa.EncAlgs() {
		n = append(n, espEncName(a))
	}
	return strings.Join(n, ", ")
}

func integNames() string {
	var n []string
	for _, i := range integs {
		n = append(n, i.name)
	}
	return strings.Join(n, ", ")
}

func prfNames() string {
	var n []string
	for _, p := range prfs {
		n = append(n, p.name)
	}
	return strings.Join(n, ", ")
}

func dhNames(withNone bool) string {
	var n []string
	for _, d := range dhs {
		if d.id == DHCurve25519 {
			n = append(n, "curve25519 (x25519)")
			continue
		}
		n = append(n, d.name)
	}
	if withNone {
		n = append(n, "none")
	}
	return strings.Join(n, ", ")
}

func ikeEncrByName(name string) *encrAlg {
	for i := range ikeEncrs {
		if ikeEncrs[i].name == name {
			return &ikeEncrs[i]
		}
	}
	return nil
}

func espEncByName(name string) sa.EncAlg {
	for _, a := range sa.EncAlgs() {
		if espEncName(a) == name {
			return a
		}
	}
	return sa.EncInvalid
}

func integByName(name string) *integAlg {
	for i := range integs {
		if integs[i].name == name {
			return &integs[i]
		}
	}
	return nil
}

func prfByName(name string) *prfAlg {
	for i := range prfs {
		if prfs[i].name == name {
			return &prfs[i]
		}
	}
	return nil
}

func dhByName(name string) *dhAlg {
	for i := range dhs {
		if dhs[i].name == name {
			return &dhs[i]
		}
	}
	return nil
}

// ParseIKEProposal parses strongSwan's proposal syntax
// ("aes256gcm16-prfsha384-ecp384", "aes256-sha256-modp2048",
// "chacha20poly1305-prfsha256-x25519"), also a comma-separated list of
// proposals. Algorithm names are case-insensitive and strongSwan's aliases
// are accepted (aes, aes128gcm128, sha, sha2_256, x25519, …).
//
// It follows strongSwan's rules (proposal.c check_proposal): without a PRF
// the PRFs implied by the integrity algorithms are used; an AEAD-only
// proposal drops its integrity algorithms; classic and AEAD ciphers do not
// mix in one proposal; a DH group is required ("none" is dropped). A
// proposal naming several algorithms of a kind expands into every
// combination, in order of preference: encryption first, then integrity,
// PRF, DH. Duplicates are removed.
func ParseIKEProposal(s string) ([]IKE, error) {
	props, err := splitProposals("IKE", s, func(n string) bool { return ikeEncrByName(n) != nil })
	if err != nil {
		return nil, err
	}
	var out []IKE
	for i, t := range props {
		name := proposalName(s, i)
		if len(t.esn) > 0 {
			return nil, fmt.Errorf("IKE proposal %q: esn/noesn apply to ESP proposals only", name)
		}
		if len(t.encr) == 0 {
			return nil, fmt.Errorf("IKE proposal %q: needs an encryption algorithm (%s)", name, ikeEncrNames())
		}
		aead := ikeEncrByName(t.encr[0]).aead
		for _, n := range t.encr[1:] {
			if ikeEncrByName(n).aead != aead {
				return nil, fmt.Errorf("IKE proposal %q: classic (%s) and AEAD (%s) encryption cannot be in one proposal; write two proposals separated by a comma",
					name, classicOf(t.encr), aeadOf(t.encr))
			}
		}
		prfList := t.prf
		if len(prfList) == 0 {
			for _, n := range t.integ {
				prfList = addOnce(prfList, findPRF(integByName(n).prf).name)
			}
		}
		if len(prfList) == 0 {
			return nil, fmt.Errorf("IKE proposal %q: needs a PRF (%s)", name, prfNames())
		}
		integList := t.integ
		if aead {
			integList = nil
		} else if len(integList) == 0 {
			return nil, fmt.Errorf("IKE proposal %q: %s needs an integrity algorithm (%s)", name, t.encr[0], integNames())
		}
		var dhList []uint16
		for _, d := range t.dh {
			if d != 0 {
				dhList = append(dhList, d)
			}
		}
		if len(dhList) == 0 {
			return nil, fmt.Errorf("IKE proposal %q: needs a DH group (%s)", name, dhNames(false))
		}
		addKEs := addKECombos(t.ke)
		for _, en := range t.encr {
			e := ikeEncrByName(en)
			integIDs := []uint16{IntegNone}
			if !aead {
				integIDs = integIDs[:0]
				for _, n := range integList {
					integIDs = append(integIDs, integByName(n).id)
				}
			}
			for _, ig := range integIDs {
				for _, pn := range prfList {
					for _, d := range dhList {
						for _, ak := range addKEs {
							out = addOnce(out, IKE{Encr: e.id, EncrKeyBits: e.keyBits, PRF: prfByName(pn).id, Integ: ig, DH: d, AddKE: ak})
						}
					}
				}
			}
		}
	}
	return out, nil
}

// ParseESPProposal parses strongSwan's esp_proposals syntax ("aes128gcm16",
// "aes256-sha256", "aes256gcm16-ecp384", "chacha20poly1305-esn"), also a
// comma-separated list. A DH group asks for PFS in CREATE_CHILD_SA; "none"
// beside a group makes PFS optional. Without esn/noesn the suite has no
// ESN (strongSwan's default); naming both offers both. As in strongSwan,
// an AEAD-only proposal drops integrity algorithms and PRFs are ignored;
// unlike strongSwan a classic cipher needs an integrity algorithm, because
// the ESP core never runs ESP without authentication.
func ParseESPProposal(s string) ([]ESP, error) {
	props, err := splitProposals("ESP", s, func(n string) bool { return espEncByName(n) != sa.EncInvalid })
	if err != nil {
		return nil, err
	}
	var out []ESP
	for i, t := range props {
		name := proposalName(s, i)
		if len(t.encr) == 0 {
			return nil, fmt.Errorf("ESP proposal %q: needs an encryption algorithm (%s)", name, espEncNames())
		}
		aead := espEncByName(t.encr[0]).IsAEAD()
		for _, n := range t.encr[1:] {
			if espEncByName(n).IsAEAD() != aead {
				return nil, fmt.Errorf("ESP proposal %q: classic (%s) and AEAD (%s) encryption cannot be in one proposal; write two proposals separated by a comma",
					name, classicOfESP(t.encr), aeadOfESP(t.encr))
			}
		}
		integList := []sa.IntegAlg{sa.IntegNone}
		if !aead {
			if len(t.integ) == 0 {
				return nil, fmt.Errorf("ESP proposal %q: %s needs an integrity algorithm (%s): ESP without authentication is never allowed",
					name, t.encr[0], integNames())
			}
			integList = integList[:0]
			for _, n := range t.integ {
				integList = append(integList, integByName(n).esp)
			}
		}
		dhList := t.dh
		if len(dhList) == 0 {
			dhList = []uint16{0}
		}
		esnList := t.esn
		if len(esnList) == 0 {
			esnList = []bool{false}
		}
		addKEs := addKECombos(t.ke)
		if len(addKEs) > 1 || addKEs[0] != [MaxAddKE]uint16{} {
			if !slices.ContainsFunc(t.dh, func(d uint16) bool { return d != 0 }) {
				return nil, fmt.Errorf("ESP proposal %q: additional key exchanges (keN_) run after a PFS group: write one first, e.g. aes256gcm16-x25519-ke1_mlkem768", name)
			}
		}
		for _, en := range t.encr {
			for _, ig := range integList {
				for _, d := range dhList {
					for _, ak := range addKEs {
						if d == 0 && ak != [MaxAddKE]uint16{} {
							continue // no PFS, nothing to follow up
						}
						for _, esn := range esnList {
							out = addOnce(out, ESP{Enc: espEncByName(en), Integ: ig, DH: d, ESN: esn, AddKE: ak})
						}
					}
				}
			}
		}
	}
	return out, nil
}

// addKECombos expands per-type lists of additional key exchange methods
// into every combination, ADDKE1 varying slowest; a type without a list
// is 0 (none).
func addKECombos(lists [MaxAddKE][]uint16) [][MaxAddKE]uint16 {
	out := [][MaxAddKE]uint16{{}}
	for i, l := range lists {
		if len(l) == 0 {
			continue
		}
		next := make([][MaxAddKE]uint16, 0, len(out)*len(l))
		for _, c := range out {
			for _, id := range l {
				c[i] = id
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

func proposalName(s string, i int) string {
	return strings.TrimSpace(strings.Split(s, ",")[i])
}

func classicOf(names []string) string {
	for _, n := range names {
		if !ikeEncrByName(n).aead {
			return n
		}
	}
	return ""
}

func aeadOf(names []string) string {
	for _, n := range names {
		if ikeEncrByName(n).aead {
			return n
		}
	}
	return ""
}

func classicOfESP(names []string) string {
	for _, n := range names {
		if !espEncByName(n).IsAEAD() {
			return n
		}
	}
	return ""
}

func aeadOfESP(names []string) string {
	for _, n := range names {
		if espEncByName(n).IsAEAD() {
			return n
		}
	}
	return ""
}

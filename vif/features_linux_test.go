package vif

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// compactBitset is an ETHTOOL_A_BITSET_* nest in the compact list form
// the kernel sends for features: NOMASK, SIZE, VALUE words.
func compactBitset(typ, size int, set ...int) *nl.RtAttr {
	a := nl.NewRtAttr(typ|unix.NLA_F_NESTED, nil)
	a.AddRtAttr(unix.ETHTOOL_A_BITSET_NOMASK, nil)
	a.AddRtAttr(unix.ETHTOOL_A_BITSET_SIZE, nl.Uint32Attr(uint32(size)))
	words := make([]byte, 4*((size+31)/32))
	for _, i := range set {
		w := binary.NativeEndian.Uint32(words[4*(i/32):])
		binary.NativeEndian.PutUint32(words[4*(i/32):], w|1<<(i%32))
	}
	a.AddRtAttr(unix.ETHTOOL_A_BITSET_VALUE, words)
	return a
}

// verboseBitset is the verbose form: a list of bits with index and
// name; in list form (NOMASK) the listed bits are the set ones,
// otherwise bits in on carry ETHTOOL_A_BITSET_BIT_VALUE.
func verboseBitset(typ, size int, list bool, listed []int, on map[int]bool) *nl.RtAttr {
	a := nl.NewRtAttr(typ|unix.NLA_F_NESTED, nil)
	if list {
		a.AddRtAttr(unix.ETHTOOL_A_BITSET_NOMASK, nil)
	}
	a.AddRtAttr(unix.ETHTOOL_A_BITSET_SIZE, nl.Uint32Attr(uint32(size)))
	bits := a.AddRtAttr(unix.ETHTOOL_A_BITSET_BITS|unix.NLA_F_NESTED, nil)
	for _, i := range listed {
		b := bits.AddRtAttr(unix.ETHTOOL_A_BITSET_BITS_BIT|unix.NLA_F_NESTED, nil)
		b.AddRtAttr(unix.ETHTOOL_A_BITSET_BIT_INDEX, nl.Uint32Attr(uint32(i)))
		b.AddRtAttr(unix.ETHTOOL_A_BITSET_BIT_NAME, nl.ZeroTerminated("bit"))
		if on[i] {
			b.AddRtAttr(unix.ETHTOOL_A_BITSET_BIT_VALUE, nil)
		}
	}
	return a
}

func serialize(attrs ...*nl.RtAttr) []byte {
	var b []byte
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

func strsetReply(id uint32, names []string) []byte {
	sets := nl.NewRtAttr(unix.ETHTOOL_A_STRSET_STRINGSETS|unix.NLA_F_NESTED, nil)
	// Another set first, as a reply for several sets would have it.
	other := sets.AddRtAttr(unix.ETHTOOL_A_STRINGSETS_STRINGSET|unix.NLA_F_NESTED, nil)
	other.AddRtAttr(unix.ETHTOOL_A_STRINGSET_ID, nl.Uint32Attr(id+1))
	other.AddRtAttr(unix.ETHTOOL_A_STRINGSET_COUNT, nl.Uint32Attr(1))
	set := sets.AddRtAttr(unix.ETHTOOL_A_STRINGSETS_STRINGSET|unix.NLA_F_NESTED, nil)
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_ID, nl.Uint32Attr(id))
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_COUNT, nl.Uint32Attr(uint32(len(names))))
	strs := set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_STRINGS|unix.NLA_F_NESTED, nil)
	// Reverse order: the index, not the position, places a name.
	for i := len(names) - 1; i >= 0; i-- {
		s := strs.AddRtAttr(unix.ETHTOOL_A_STRINGS_STRING|unix.NLA_F_NESTED, nil)
		s.AddRtAttr(unix.ETHTOOL_A_STRING_INDEX, nl.Uint32Attr(uint32(i)))
		s.AddRtAttr(unix.ETHTOOL_A_STRING_VALUE, nl.ZeroTerminated(names[i]))
	}
	return serialize(sets)
}

func header() *nl.RtAttr {
	h := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HEADER|unix.NLA_F_NESTED, nil)
	h.AddRtAttr(unix.ETHTOOL_A_HEADER_DEV_INDEX, nl.Uint32Attr(7))
	h.AddRtAttr(unix.ETHTOOL_A_HEADER_DEV_NAME, nl.ZeroTerminated("veth0"))
	return h
}

// testNames are a slice of the kernel's ETH_SS_FEATURES with bit 40
// past the first word and bit 3 left unnamed.
func testNames() []string {
	names := make([]string, 70)
	for i := range names {
		names[i] = "feature-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	names[3] = ""
	names[16] = "tx-tcp-segmentation"
	names[19] = "tx-tcp6-segmentation"
	names[40] = "esp-hw-offload"
	return names
}

func TestParseFeatures(t *testing.T) {
	const size = 70
	// Bit 16: available, active, requested. 19: available, requested
	// but not active. 40: active, not available (fixed on). 41:
	// nochange. 69: available, not requested, active (requested off).
	hw := []int{16, 19, 41, 69}
	wanted := []int{16, 19}
	active := []int{16, 40, 69}
	nochange := []int{41}
	in := func(s []int) map[int]bool {
		m := map[int]bool{}
		for _, i := range s {
			m[i] = true
		}
		return m
	}
	all := make([]int, size)
	for i := range all {
		all[i] = i
	}
	tests := []struct {
		name  string
		reply []byte
	}{
		{"compact", serialize(header(),
			compactBitset(unix.ETHTOOL_A_FEATURES_HW, size, hw...),
			compactBitset(unix.ETHTOOL_A_FEATURES_WANTED, size, wanted...),
			compactBitset(unix.ETHTOOL_A_FEATURES_ACTIVE, size, active...),
			compactBitset(unix.ETHTOOL_A_FEATURES_NOCHANGE, size, nochange...))},
		{"verbose list", serialize(
			verboseBitset(unix.ETHTOOL_A_FEATURES_NOCHANGE, size, true, nochange, nil),
			verboseBitset(unix.ETHTOOL_A_FEATURES_ACTIVE, size, true, active, nil),
			verboseBitset(unix.ETHTOOL_A_FEATURES_WANTED, size, true, wanted, nil),
			verboseBitset(unix.ETHTOOL_A_FEATURES_HW, size, true, hw, nil),
			header())},
		{"verbose with values", serialize(header(),
			verboseBitset(unix.ETHTOOL_A_FEATURES_HW, size, false, all, in(hw)),
			verboseBitset(unix.ETHTOOL_A_FEATURES_WANTED, size, false, all, in(wanted)),
			verboseBitset(unix.ETHTOOL_A_FEATURES_ACTIVE, size, false, all, in(active)),
			verboseBitset(unix.ETHTOOL_A_FEATURES_NOCHANGE, size, false, all, in(nochange)))},
	}
	namesAttrs, err := parseAttrs(strsetReply(ethSSFeatures, testNames()))
	if err != nil {
		t.Fatal(err)
	}
	names, err := parseStrsetReply(namesAttrs, ethSSFeatures)
	if err != nil {
		t.Fatal(err)
	}
	if want := testNames(); strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("names:\n got %q\nwant %q", names, want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs, err := parseAttrs(tt.reply)
			if err != nil {
				t.Fatal(err)
			}
			fb, err := parseFeaturesReply(attrs)
			if err != nil {
				t.Fatal(err)
			}
			fs := FeatureSet{Dev: "veth0", Features: fb.features(names)}
			if len(fs.Features) != size-1 {
				t.Errorf("%d features, want %d (bit 3 has no name)", len(fs.Features), size-1)
			}
			for i, f := range fs.Features {
				bit := i
				if i >= 3 {
					bit++
				}
				want := Feature{Name: names[bit], Available: in(hw)[bit], Active: in(active)[bit],
					Requested: in(wanted)[bit], NeverChange: in(nochange)[bit]}
				if f != want {
					t.Errorf("bit %d: got %+v, want %+v", bit, f, want)
				}
			}
			wantStates := map[string]string{
				"tx-tcp-segmentation":  "on",
				"tx-tcp6-segmentation": "off [requested on]",
				"esp-hw-offload":       "on [fixed]",
				names[41]:              "off [fixed]",
				names[69]:              "on [requested off]",
				names[0]:               "off [fixed]",
			}
			for name, want := range wantStates {
				f, ok := fs.Lookup(name)
				if !ok || f.State() != want {
					t.Errorf("%s: got %q (found %t), want %q", name, f.State(), ok, want)
				}
			}
			tso := fs.TSO()
			if !tso.Any() || tso.All() || len(tso.Features) != 2 {
				t.Errorf("TSO: %v, want 2 members, one on", tso)
			}
			if got, want := tso.String(), "tcp-segmentation-offload: on (tx-tcp-segmentation: on, tx-tcp6-segmentation: off [requested on])"; got != want {
				t.Errorf("TSO.String:\n got %q\nwant %q", got, want)
			}
			esp := fs.ESP()
			if len(esp.Features) != 1 || !esp.All() {
				t.Errorf("ESP: %v, want just esp-hw-offload, on", esp)
			}
			if g := fs.GRO(); len(g.Features) != 0 || g.Any() || g.All() ||
				g.String() != "generic-receive-offload: unknown to this kernel" {
				t.Errorf("GRO of a kernel without rx-gro: %v", g)
			}
		})
	}
}

func TestFeatureState(t *testing.T) {
	tests := []struct {
		name string
		f    Feature
		want string
	}{
		{"on", Feature{Available: true, Active: true, Requested: true}, "on"},
		{"off", Feature{Available: true}, "off"},
		{"fixed on", Feature{Active: true, Requested: true}, "on [fixed]"},
		{"fixed off", Feature{}, "off [fixed]"},
		{"never change", Feature{Available: true, Active: true, Requested: true, NeverChange: true}, "on [fixed]"},
		{"fixed wins over requested", Feature{Requested: true}, "off [fixed]"},
		{"requested on", Feature{Available: true, Requested: true}, "off [requested on]"},
		{"requested off", Feature{Available: true, Active: true}, "on [requested off]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.State(); got != tt.want {
				t.Errorf("State() = %q, want %q", got, tt.want)
			}
			tt.f.Name = "x"
			if got := tt.f.String(); got != "x: "+tt.want {
				t.Errorf("String() = %q", got)
			}
		})
	}
}

func TestFeatureLookupAliases(t *testing.T) {
	fs := FeatureSet{Features: []Feature{
		{Name: "tx-generic-segmentation", Active: true},
		{Name: "rx-gro"},
		{Name: "tx-checksum-ipv6", Active: true},
	}}
	for alias, name := range map[string]string{
		"generic-segmentation-offload": "tx-generic-segmentation",
		"tx-generic-segmentation":      "tx-generic-segmentation",
		"generic-receive-offload":      "rx-gro",
	} {
		if f, ok := fs.Lookup(alias); !ok || f.Name != name {
			t.Errorf("Lookup(%q) = %v, %t; want %s", alias, f, ok, name)
		}
	}
	if f, ok := fs.Lookup("large-receive-offload"); ok {
		t.Errorf("Lookup of an absent feature found %v", f)
	}
	if g := fs.GSO(); !g.All() || g.Name != "generic-segmentation-offload" {
		t.Errorf("GSO = %v", g)
	}
	if g := fs.GRO(); g.Any() || len(g.Features) != 1 {
		t.Errorf("GRO = %v", g)
	}
	if g := fs.TxChecksum(); !g.Any() || !g.All() || len(g.Features) != 1 {
		t.Errorf("TxChecksum = %v, want the one member the set has, on", g)
	}
	var names []string
	for _, g := range fs.Offloads() {
		names = append(names, g.Name)
	}
	if got, want := strings.Join(names, " "), "tcp-segmentation-offload generic-segmentation-offload tx-checksumming generic-receive-offload esp"; got != want {
		t.Errorf("Offloads: %s, want %s", got, want)
	}
}

func TestParseFeaturesErrors(t *testing.T) {
	full := func(sizes ...int) []byte {
		types := []int{unix.ETHTOOL_A_FEATURES_HW, unix.ETHTOOL_A_FEATURES_WANTED,
			unix.ETHTOOL_A_FEATURES_ACTIVE, unix.ETHTOOL_A_FEATURES_NOCHANGE}
		var attrs []*nl.RtAttr
		for i, s := range sizes {
			attrs = append(attrs, compactBitset(types[i], s))
		}
		return serialize(attrs...)
	}
	shortValue := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HW, nil)
	shortValue.AddRtAttr(unix.ETHTOOL_A_BITSET_SIZE, nl.Uint32Attr(64))
	shortValue.AddRtAttr(unix.ETHTOOL_A_BITSET_VALUE, make([]byte, 4))
	noSize := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HW, nil)
	noSize.AddRtAttr(unix.ETHTOOL_A_BITSET_VALUE, make([]byte, 8))
	huge := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HW, nil)
	huge.AddRtAttr(unix.ETHTOOL_A_BITSET_SIZE, nl.Uint32Attr(1<<31))
	noIndex := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HW, nil)
	noIndex.AddRtAttr(unix.ETHTOOL_A_BITSET_BITS, nil).AddRtAttr(unix.ETHTOOL_A_BITSET_BITS_BIT, nil).
		AddRtAttr(unix.ETHTOOL_A_BITSET_BIT_NAME, nl.ZeroTerminated("x"))
	tests := []struct {
		name  string
		reply []byte
		want  string
	}{
		{"truncated header", []byte{8, 0}, "truncated"},
		{"length past end", []byte{12, 0, 2, 0, 0, 0, 0, 0}, "length 12"},
		{"length below header", []byte{2, 0, 2, 0}, "length 2"},
		{"missing bitset", full(64, 64, 64), "missing features bitsets"},
		{"sizes differ", full(64, 64, 64, 32), "different sizes"},
		{"short value", serialize(shortValue), "bitset value of 4 bytes for 64 bits"},
		{"no size", serialize(noSize), "without ETHTOOL_A_BITSET_SIZE"},
		{"huge", serialize(huge), "at most"},
		{"bit without index", serialize(noIndex), "without an index"},
		{"short u32", serialize(nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HW, serialize(
			nl.NewRtAttr(unix.ETHTOOL_A_BITSET_SIZE, []byte{1, 0})))), "want a u32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs, err := parseAttrs(tt.reply)
			if err == nil {
				_, err = parseFeaturesReply(attrs)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestParseStrsetErrors(t *testing.T) {
	badIndex := nl.NewRtAttr(unix.ETHTOOL_A_STRSET_STRINGSETS, nil)
	set := badIndex.AddRtAttr(unix.ETHTOOL_A_STRINGSETS_STRINGSET, nil)
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_ID, nl.Uint32Attr(ethSSFeatures))
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_COUNT, nl.Uint32Attr(2))
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_STRINGS, nil).AddRtAttr(unix.ETHTOOL_A_STRINGS_STRING, nil).
		AddRtAttr(unix.ETHTOOL_A_STRING_INDEX, nl.Uint32Attr(2))
	noCount := nl.NewRtAttr(unix.ETHTOOL_A_STRSET_STRINGSETS, nil)
	noCount.AddRtAttr(unix.ETHTOOL_A_STRINGSETS_STRINGSET, nil).
		AddRtAttr(unix.ETHTOOL_A_STRINGSET_ID, nl.Uint32Attr(ethSSFeatures))
	tests := []struct {
		name  string
		reply []byte
		want  string
	}{
		{"other set only", strsetReply(ethSSFeatures+5, []string{"a"}), "no string set 4"},
		{"empty", nil, "no string set 4"},
		{"index past count", serialize(badIndex), "string index 2 in a set of 2"},
		{"no count", serialize(noCount), "without ETHTOOL_A_STRINGSET_COUNT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs, err := parseAttrs(tt.reply)
			if err == nil {
				_, err = parseStrsetReply(attrs, ethSSFeatures)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// FuzzParseFeatures: no answer, however broken, panics the parsers, and
// a bitset that parses never reports a bit outside its size.
func FuzzParseFeatures(f *testing.F) {
	f.Add(serialize(header(),
		compactBitset(unix.ETHTOOL_A_FEATURES_HW, 70, 1, 40),
		compactBitset(unix.ETHTOOL_A_FEATURES_WANTED, 70, 1),
		compactBitset(unix.ETHTOOL_A_FEATURES_ACTIVE, 70, 40),
		compactBitset(unix.ETHTOOL_A_FEATURES_NOCHANGE, 70)))
	f.Add(serialize(verboseBitset(unix.ETHTOOL_A_FEATURES_HW, 3, true, []int{0, 2}, nil)))
	f.Add(strsetReply(ethSSFeatures, []string{"a", "", "c"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		attrs, err := parseAttrs(b)
		if err != nil {
			return
		}
		if fb, err := parseFeaturesReply(attrs); err == nil {
			if fb.hw.has(fb.hw.size) || fb.active.has(-1) {
				t.Fatal("bit outside the bitset reported set")
			}
			fb.features([]string{"a", "b"})
		}
		for _, a := range attrs {
			if s, err := parseBitset(a.val); err == nil && len(s.words) != (s.size+31)/32 {
				t.Fatalf("bitset of %d bits has %d words", s.size, len(s.words))
			}
		}
		parseStrsetReply(attrs, ethSSFeatures)
	})
}

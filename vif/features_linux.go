package vif

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Features reads every named netdev feature of interface name in
// network namespace nsName ("" = the daemon's) with its state.
// Equivalent to: `ip netns exec NS ethtool -k NAME`.
//
// It speaks ethtool netlink (generic netlink family "ethtool", Linux
// 5.6+) on a socket opened inside nsName, which is where the kernel
// looks the device up: ETHTOOL_MSG_FEATURES_GET for the four feature
// bitmaps, as compact bitsets, and ETHTOOL_MSG_STRSET_GET for the
// names of their bits (string set ETH_SS_FEATURES). Reading needs no
// privilege beyond entering nsName.
func Features(name, nsName string) (FeatureSet, error) {
	fs, err := features(name, nsName)
	if err != nil {
		return FeatureSet{}, featuresError(name, nsName, err)
	}
	return fs, nil
}

func features(name, nsName string) (FeatureSet, error) {
	ns := netns.None()
	if nsName != "" {
		h, err := netns.GetFromName(nsName)
		if err != nil {
			return FeatureSet{}, fmt.Errorf("network namespace: %w", err)
		}
		defer h.Close()
		ns = h
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_GENERIC)
	if err != nil {
		return FeatureSet{}, fmt.Errorf("netlink socket: %w", err)
	}
	defer sock.Close()
	// The kernel's extended ack says what it did not like in a request.
	_ = sock.SetExtAck(true)
	if err := sock.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		return FeatureSet{}, fmt.Errorf("netlink socket: %w", err)
	}
	c := genlConn{sockets: map[int]*nl.SocketHandle{unix.NETLINK_GENERIC: {Socket: sock}}}

	family, err := c.family(unix.ETHTOOL_GENL_NAME)
	if errors.Is(err, unix.ENOENT) {
		return FeatureSet{}, fmt.Errorf("kernel has no ethtool netlink (Linux 5.6+): %w", err)
	}
	if err != nil {
		return FeatureSet{}, err
	}

	// Features first: a missing device fails here, with ENODEV.
	header := nl.NewRtAttr(unix.ETHTOOL_A_FEATURES_HEADER|unix.NLA_F_NESTED, nil)
	header.AddRtAttr(unix.ETHTOOL_A_HEADER_DEV_NAME, nl.ZeroTerminated(name))
	header.AddRtAttr(unix.ETHTOOL_A_HEADER_FLAGS, nl.Uint32Attr(unix.ETHTOOL_FLAG_COMPACT_BITSETS))
	reply, err := c.request(family, unix.ETHTOOL_MSG_FEATURES_GET, header)
	switch {
	case errors.Is(err, unix.ENODEV):
		return FeatureSet{}, fmt.Errorf("no such interface: %w", err)
	case err != nil:
		return FeatureSet{}, fmt.Errorf("ETHTOOL_MSG_FEATURES_GET: %w", err)
	}
	bits, err := parseFeaturesReply(reply)
	if err != nil {
		return FeatureSet{}, fmt.Errorf("ETHTOOL_MSG_FEATURES_GET reply: %w", err)
	}

	// Feature names are global, but the kernel answers EINVAL to a
	// STRSET_GET without a header (Linux 6.18), so name the device.
	header = nl.NewRtAttr(unix.ETHTOOL_A_STRSET_HEADER|unix.NLA_F_NESTED, nil)
	header.AddRtAttr(unix.ETHTOOL_A_HEADER_DEV_NAME, nl.ZeroTerminated(name))
	sets := nl.NewRtAttr(unix.ETHTOOL_A_STRSET_STRINGSETS|unix.NLA_F_NESTED, nil)
	set := sets.AddRtAttr(unix.ETHTOOL_A_STRINGSETS_STRINGSET|unix.NLA_F_NESTED, nil)
	set.AddRtAttr(unix.ETHTOOL_A_STRINGSET_ID, nl.Uint32Attr(ethSSFeatures))
	reply, err = c.request(family, unix.ETHTOOL_MSG_STRSET_GET, header, sets)
	if err != nil {
		return FeatureSet{}, fmt.Errorf("ETHTOOL_MSG_STRSET_GET: %w", err)
	}
	names, err := parseStrsetReply(reply, ethSSFeatures)
	if err != nil {
		return FeatureSet{}, fmt.Errorf("ETHTOOL_MSG_STRSET_GET reply: %w", err)
	}
	return FeatureSet{Dev: name, Netns: nsName, Features: bits.features(names)}, nil
}

// ethSSFeatures is ETH_SS_FEATURES of enum ethtool_stringset
// (include/uapi/linux/ethtool.h): the names of netdev features.
const ethSSFeatures = 4

// genlConn sends generic netlink requests on one socket.
type genlConn struct {
	sockets map[int]*nl.SocketHandle
}

// family resolves a generic netlink family name to its id
// (CTRL_CMD_GETFAMILY, include/uapi/linux/genetlink.h).
func (c genlConn) family(name string) (uint16, error) {
	attrs, err := c.request(nl.GENL_ID_CTRL, nl.GENL_CTRL_CMD_GETFAMILY,
		nl.NewRtAttr(nl.GENL_CTRL_ATTR_FAMILY_NAME, nl.ZeroTerminated(name)))
	if err != nil {
		return 0, fmt.Errorf("generic netlink family %q: %w", name, err)
	}
	for _, a := range attrs {
		if a.typ == nl.GENL_CTRL_ATTR_FAMILY_ID && len(a.val) >= 2 {
			return binary.NativeEndian.Uint16(a.val), nil
		}
	}
	return 0, fmt.Errorf("generic netlink family %q: no CTRL_ATTR_FAMILY_ID in answer", name)
}

// request sends one command of family and returns the attributes of
// the one answer, after its struct genlmsghdr.
func (c genlConn) request(family uint16, cmd uint8, attrs ...*nl.RtAttr) ([]attr, error) {
	version := uint8(unix.ETHTOOL_GENL_VERSION)
	if family == nl.GENL_ID_CTRL {
		version = nl.GENL_CTRL_VERSION
	}
	// No NLM_F_ACK: a get answers with its reply or an error, and an
	// ack left unread would wait in the socket.
	req := nl.NewNetlinkRequest(int(family), 0)
	req.Sockets = c.sockets
	req.AddData(&nl.Genlmsg{Command: cmd, Version: version})
	for _, a := range attrs {
		req.AddData(a)
	}
	msgs, err := req.Execute(unix.NETLINK_GENERIC, family)
	switch {
	case err != nil:
		return nil, err
	case len(msgs) != 1:
		return nil, fmt.Errorf("%d answers, want 1", len(msgs))
	case len(msgs[0]) < unix.GENL_HDRLEN:
		return nil, fmt.Errorf("short answer (%d bytes)", len(msgs[0]))
	}
	return parseAttrs(msgs[0][unix.GENL_HDRLEN:])
}

// attr is one netlink attribute (struct nlattr,
// include/uapi/linux/netlink.h) with the NLA_F_NESTED and
// NLA_F_NET_BYTEORDER flags cleared from its type.
type attr struct {
	typ uint16
	val []byte
}

// parseAttrs splits b into attributes. Each is checked against what is
// left of b before it is sliced; the padding after the last one may be
// missing.
func parseAttrs(b []byte) ([]attr, error) {
	var attrs []attr
	for len(b) > 0 {
		if len(b) < unix.SizeofNlAttr {
			return nil, fmt.Errorf("attribute header truncated: %d bytes left", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if n < unix.SizeofNlAttr || n > len(b) {
			return nil, fmt.Errorf("attribute %d: length %d, %d bytes left", typ, n, len(b))
		}
		attrs = append(attrs, attr{typ: typ, val: b[unix.SizeofNlAttr:n]})
		b = b[min(nlaAlign(n), len(b)):]
	}
	return attrs, nil
}

func nlaAlign(n int) int { return (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1) }

func attrU32(a attr) (uint32, error) {
	if len(a.val) < 4 {
		return 0, fmt.Errorf("attribute %d: %d bytes, want a u32", a.typ, len(a.val))
	}
	return binary.NativeEndian.Uint32(a.val), nil
}

// maxBits bounds a bitset or string set from the kernel (netdev
// features are 64 today) so that a broken answer cannot make us
// allocate gigabytes.
const maxBits = 1 << 16

// bitset is an ethtool netlink bitset's value: bit i is set when
// words[i/32] has bit i%32.
type bitset struct {
	size  int
	words []uint32
}

func (s bitset) has(i int) bool {
	return i >= 0 && i < s.size && i/32 < len(s.words) && s.words[i/32]&(1<<(i%32)) != 0
}

// parseBitset decodes a nest of ETHTOOL_A_BITSET_* attributes
// (Documentation/networking/ethtool-netlink.rst, "Bit sets") into its
// value. The compact form carries the value as an array of host-order
// u32 words; the verbose form lists bits, which are set when the list
// is a plain list (ETHTOOL_A_BITSET_NOMASK) or carry
// ETHTOOL_A_BITSET_BIT_VALUE. A mask, if sent, is not needed: bits
// outside it are reported clear in the value.
func parseBitset(b []byte) (bitset, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return bitset{}, err
	}
	var (
		s             = bitset{size: -1}
		value, bits   []byte
		list, compact bool
	)
	for _, a := range attrs {
		switch a.typ {
		case unix.ETHTOOL_A_BITSET_NOMASK:
			list = true
		case unix.ETHTOOL_A_BITSET_SIZE:
			n, err := attrU32(a)
			if err != nil {
				return bitset{}, err
			}
			if n > maxBits {
				return bitset{}, fmt.Errorf("bitset of %d bits, at most %d expected", n, maxBits)
			}
			s.size = int(n)
		case unix.ETHTOOL_A_BITSET_VALUE:
			value, compact = a.val, true
		case unix.ETHTOOL_A_BITSET_BITS:
			bits = a.val
		}
	}
	if compact {
		if s.size < 0 {
			return bitset{}, errors.New("compact bitset without ETHTOOL_A_BITSET_SIZE")
		}
		nwords := (s.size + 31) / 32
		if len(value) < 4*nwords {
			return bitset{}, fmt.Errorf("bitset value of %d bytes for %d bits", len(value), s.size)
		}
		s.words = make([]uint32, nwords)
		for i := range s.words {
			s.words[i] = binary.NativeEndian.Uint32(value[4*i:])
		}
		return s, nil
	}
	entries, err := parseAttrs(bits)
	if err != nil {
		return bitset{}, fmt.Errorf("ETHTOOL_A_BITSET_BITS: %w", err)
	}
	var set []int
	for _, e := range entries {
		if e.typ != unix.ETHTOOL_A_BITSET_BITS_BIT {
			continue
		}
		fields, err := parseAttrs(e.val)
		if err != nil {
			return bitset{}, fmt.Errorf("ETHTOOL_A_BITSET_BITS_BIT: %w", err)
		}
		idx, on := -1, list
		for _, f := range fields {
			switch f.typ {
			case unix.ETHTOOL_A_BITSET_BIT_INDEX:
				n, err := attrU32(f)
				if err != nil {
					return bitset{}, err
				}
				if n >= maxBits {
					return bitset{}, fmt.Errorf("bit index %d, below %d expected", n, maxBits)
				}
				idx = int(n)
			case unix.ETHTOOL_A_BITSET_BIT_VALUE:
				on = true
			}
		}
		if idx < 0 {
			return bitset{}, errors.New("ETHTOOL_A_BITSET_BITS_BIT without an index")
		}
		if on {
			set = append(set, idx)
		}
		s.size = max(s.size, idx+1)
	}
	s.size = max(s.size, 0)
	s.words = make([]uint32, (s.size+31)/32)
	for _, i := range set {
		if i < s.size {
			s.words[i/32] |= 1 << (i % 32)
		}
	}
	return s, nil
}

// featureBits are the four bitmaps of ETHTOOL_MSG_FEATURES_GET_REPLY.
type featureBits struct {
	hw, wanted, active, nochange bitset
}

// parseFeaturesReply decodes ETHTOOL_MSG_FEATURES_GET_REPLY; the four
// bitsets must be there and of one size.
func parseFeaturesReply(attrs []attr) (featureBits, error) {
	var (
		fb   featureBits
		seen int
	)
	for _, a := range attrs {
		var dst *bitset
		switch a.typ {
		case unix.ETHTOOL_A_FEATURES_HW:
			dst = &fb.hw
		case unix.ETHTOOL_A_FEATURES_WANTED:
			dst = &fb.wanted
		case unix.ETHTOOL_A_FEATURES_ACTIVE:
			dst = &fb.active
		case unix.ETHTOOL_A_FEATURES_NOCHANGE:
			dst = &fb.nochange
		default:
			continue
		}
		s, err := parseBitset(a.val)
		if err != nil {
			return featureBits{}, fmt.Errorf("features bitset %d: %w", a.typ, err)
		}
		*dst = s
		seen |= 1 << a.typ
	}
	const all = 1<<unix.ETHTOOL_A_FEATURES_HW | 1<<unix.ETHTOOL_A_FEATURES_WANTED |
		1<<unix.ETHTOOL_A_FEATURES_ACTIVE | 1<<unix.ETHTOOL_A_FEATURES_NOCHANGE
	if seen != all {
		return featureBits{}, fmt.Errorf("missing features bitsets (have mask %#x, want %#x)", seen, all)
	}
	if n := fb.hw.size; fb.wanted.size != n || fb.active.size != n || fb.nochange.size != n {
		return featureBits{}, fmt.Errorf("features bitsets of different sizes: hw %d wanted %d active %d nochange %d",
			n, fb.wanted.size, fb.active.size, fb.nochange.size)
	}
	return fb, nil
}

// features names the bits; a bit without a name (none today) is left
// out, as `ethtool -k` leaves it out.
func (fb featureBits) features(names []string) []Feature {
	var fs []Feature
	for i := 0; i < fb.hw.size && i < len(names); i++ {
		if names[i] == "" {
			continue
		}
		fs = append(fs, Feature{
			Name:        names[i],
			Available:   fb.hw.has(i),
			Active:      fb.active.has(i),
			Requested:   fb.wanted.has(i),
			NeverChange: fb.nochange.has(i),
		})
	}
	return fs
}

// parseStrsetReply returns string set id from
// ETHTOOL_MSG_STRSET_GET_REPLY, indexed by ETHTOOL_A_STRING_INDEX.
func parseStrsetReply(attrs []attr, id uint32) ([]string, error) {
	for _, a := range attrs {
		if a.typ != unix.ETHTOOL_A_STRSET_STRINGSETS {
			continue
		}
		sets, err := parseAttrs(a.val)
		if err != nil {
			return nil, fmt.Errorf("ETHTOOL_A_STRSET_STRINGSETS: %w", err)
		}
		for _, set := range sets {
			if set.typ != unix.ETHTOOL_A_STRINGSETS_STRINGSET {
				continue
			}
			names, ok, err := parseStringset(set.val, id)
			if err != nil || ok {
				return names, err
			}
		}
	}
	return nil, fmt.Errorf("no string set %d in answer", id)
}

// parseStringset decodes one ETHTOOL_A_STRINGSETS_STRINGSET nest; ok
// is false when it is not set id.
func parseStringset(b []byte, id uint32) (names []string, ok bool, err error) {
	fields, err := parseAttrs(b)
	if err != nil {
		return nil, false, fmt.Errorf("ETHTOOL_A_STRINGSETS_STRINGSET: %w", err)
	}
	count, strs := -1, []byte(nil)
	for _, f := range fields {
		switch f.typ {
		case unix.ETHTOOL_A_STRINGSET_ID:
			n, err := attrU32(f)
			if err != nil {
				return nil, false, err
			}
			if n != id {
				return nil, false, nil
			}
			ok = true
		case unix.ETHTOOL_A_STRINGSET_COUNT:
			n, err := attrU32(f)
			if err != nil {
				return nil, false, err
			}
			if n > maxBits {
				return nil, false, fmt.Errorf("string set of %d strings, at most %d expected", n, maxBits)
			}
			count = int(n)
		case unix.ETHTOOL_A_STRINGSET_STRINGS:
			strs = f.val
		}
	}
	if !ok {
		return nil, false, nil
	}
	if count < 0 {
		return nil, true, fmt.Errorf("string set %d without ETHTOOL_A_STRINGSET_COUNT", id)
	}
	entries, err := parseAttrs(strs)
	if err != nil {
		return nil, true, fmt.Errorf("ETHTOOL_A_STRINGSET_STRINGS: %w", err)
	}
	names = make([]string, count)
	for _, e := range entries {
		if e.typ != unix.ETHTOOL_A_STRINGS_STRING {
			continue
		}
		kv, err := parseAttrs(e.val)
		if err != nil {
			return nil, true, fmt.Errorf("ETHTOOL_A_STRINGS_STRING: %w", err)
		}
		idx, name := -1, ""
		for _, f := range kv {
			switch f.typ {
			case unix.ETHTOOL_A_STRING_INDEX:
				n, err := attrU32(f)
				if err != nil {
					return nil, true, err
				}
				if n >= uint32(count) {
					return nil, true, fmt.Errorf("string index %d in a set of %d", n, count)
				}
				idx = int(n)
			case unix.ETHTOOL_A_STRING_VALUE:
				name = unix.ByteSliceToString(f.val)
			}
		}
		if idx < 0 {
			return nil, true, errors.New("ETHTOOL_A_STRINGS_STRING without an index")
		}
		names[idx] = name
	}
	return names, true, nil
}

package sa

// table is one shard of the DB: an immutable open-addressing hash table
// with linear probing whose slots hold the key inline beside the SA
// pointer, so a lookup touches one contiguous array — usually one cache
// line — instead of a Go map's directory, group and slot. It is never
// modified after build; writers build a new one (see DB.Apply).
type table struct {
	slots []slot
	mask  uint64
	n     int
}

type slot struct {
	key Key
	sa  *SA // nil: empty slot
}

// emptyTable is the shard every DB starts with.
var emptyTable = &table{slots: make([]slot, 1), mask: 0}

// newTable builds a table of the given SAs at a load factor of at most 1/2.
func newTable(sas []*SA) *table {
	size := 8
	for size < 2*len(sas) {
		size *= 2
	}
	t := &table{slots: make([]slot, size), mask: uint64(size - 1), n: len(sas)}
	for _, s := range sas {
		i := hashKey(s.key) & t.mask
		for t.slots[i].sa != nil {
			i = (i + 1) & t.mask
		}
		t.slots[i] = slot{key: s.key, sa: s}
	}
	return t
}

// get returns the SA for k (whose hash is h), or nil.
func (t *table) get(k Key, h uint64) *SA {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.sa == nil {
			return nil
		}
		if s.key == k {
			return s.sa
		}
	}
}

// all appends the table's SAs to out.
func (t *table) all(out []*SA) []*SA {
	for i := range t.slots {
		if s := t.slots[i].sa; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// hashKey mixes every bit of the key (a multiply-xorshift finalizer), so
// sequential SPIs and MACs that differ in one byte spread over shards and
// slots alike. The top shardBits bits pick the shard, the low bits the slot.
func hashKey(k Key) uint64 {
	m := k.Scope.MAC
	h := uint64(k.SPI) | uint64(k.Scope.VLAN)<<32
	h ^= (uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])) * 0xff51afd7ed558ccd
	h *= 0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}

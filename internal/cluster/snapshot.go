package cluster

import (
	"encoding/binary"
	"fmt"

	"github.com/usher-mail/usher/internal/director"
)

// Snapshot format, version 3 (deterministic: equal states give equal bytes):
//
//	"USHR" version flags(bit0 = initialised) uvarint host generation
//	hosts:      uvarint n, n * host (in host order; version 2 adds the
//	            health state to each host's flag byte, see appendHost)
//	configured: uvarint n, n * host
//	tags:       uvarint n, n * (name, uvarint users, users oldest first)
//	user:       hash (4 bytes BE), uvarint host index, timestamp
//
// User timestamps are sorted within a tag, so after the first (varint) each
// is stored as a uvarint delta: a million users take about 7 MB. Version 1
// is version 2 without the host generation; it is still read (generation 0).
const (
	snapshotMagic   = "USHR"
	snapshotVersion = 3
	// Versions 1 and 2 are still read: version 2 is version 3 without the
	// host generation (read as 0), version 1 also without health state.
	snapshotVersion2 = 2
	snapshotVersion1 = 1
)

// MarshalBinary encodes the whole state.
func (s *State) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+8*s.UserTotal())
	b = append(b, snapshotMagic...)
	flags := byte(0)
	if s.inited {
		flags = 1
	}
	b = append(b, snapshotVersion, flags)
	b = binary.AppendUvarint(b, s.hostGen)
	b = binary.AppendUvarint(b, uint64(len(s.hosts)))
	index := make([]uint64, len(s.slotIP))
	for i, h := range s.hosts {
		b = appendHost(b, h.Host, true)
		index[h.slot] = uint64(i)
	}
	b = binary.AppendUvarint(b, uint64(len(s.configured)))
	for _, h := range s.configured {
		b = appendHost(b, h, false)
	}
	b = binary.AppendUvarint(b, uint64(len(s.tags)))
	for _, d := range s.tags {
		b = appendString(b, d.name)
		b = binary.AppendUvarint(b, uint64(d.len()))
		first, prev := true, int64(0)
		d.each(func(e *entry) bool {
			b = binary.BigEndian.AppendUint32(b, e.hash)
			b = binary.AppendUvarint(b, index[e.host])
			if first {
				b = binary.AppendVarint(b, e.ts)
				first = false
			} else {
				b = binary.AppendUvarint(b, uint64(e.ts-prev))
			}
			prev = e.ts
			return true
		})
	}
	return b, nil
}

// UnmarshalBinary replaces the state with a decoded snapshot. On error the
// state is left unchanged.
func (s *State) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if string(d.bytes(4)) != snapshotMagic {
		return fmt.Errorf("%w (snapshot magic)", errCorrupt)
	}
	v := d.byte()
	if v != snapshotVersion && v != snapshotVersion2 && v != snapshotVersion1 {
		return fmt.Errorf("cluster: snapshot version %d not supported", v)
	}
	flags := d.byte()
	if flags > 1 {
		d.fail()
	}
	n := NewState()
	n.inited = flags == 1
	if v == snapshotVersion {
		n.hostGen = d.uvarint()
	}
	hosts := make([]Host, d.count(6))
	for i := range hosts {
		hosts[i] = d.host(v != snapshotVersion1)
		if d.err == nil && !validHostAt(hosts, i) {
			d.fail()
		}
	}
	if len(hosts) > maxHosts {
		d.fail()
	}
	if d.err == nil {
		for i, h := range hosts {
			n.hosts = append(n.hosts, hostRec{Host: h, slot: uint16(i)})
			n.slotIP = append(n.slotIP, h.IP)
		}
		n.slotUsers = make([]int, len(hosts))
	}
	n.configured = make([]Host, d.count(6))
	for i := range n.configured {
		n.configured[i] = d.host(false)
		if d.err == nil && !validHostAt(n.configured, i) {
			d.fail()
		}
	}
	ntags := d.count(2)
	for range ntags {
		name := d.str()
		if _, dup := n.tagIndex[name]; dup {
			d.fail()
		}
		dir := n.tag(name)
		users := d.count(6)
		var ts int64
		for j := range users {
			hash, hi := d.u32(), d.uvarint()
			if j == 0 {
				ts = d.varint()
			} else {
				delta := d.uvarint()
				if int64(delta) < 0 || ts+int64(delta) < ts {
					d.fail()
				}
				ts += int64(delta)
			}
			if d.err != nil {
				break
			}
			if _, dup := dir.get(hash); dup || hi >= uint64(len(hosts)) {
				d.fail()
				break
			}
			dir.add(hash, uint16(hi), ts)
			n.slotUsers[hi]++
		}
	}
	if err := d.finish("snapshot"); err != nil {
		return err
	}
	for _, h := range n.hosts {
		n.tag(h.Tag)
	}
	*s = *n
	return nil
}

// validHostAt checks host i: valid, normalised, after host i-1.
func validHostAt(hosts []Host, i int) bool {
	h := hosts[i]
	if !h.IP.IsValid() || h.IP != normIP(h.IP) || h.VhostCount < 0 {
		return false
	}
	return i == 0 || director.CompareAddr(hosts[i-1].IP, h.IP) < 0
}

package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Binary encoding helpers shared by commands and snapshots. Every length is
// checked against the bytes left, so a corrupt input cannot make the decoder
// allocate more than the input's size.

var errCorrupt = errors.New("cluster: corrupt encoding")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendAddr writes an address without its zone; the state never keeps zones.
func appendAddr(b []byte, ip netip.Addr) []byte {
	raw := ip.AsSlice()
	b = append(b, byte(len(raw)))
	return append(b, raw...)
}

func appendHost(b []byte, h Host) []byte {
	b = appendAddr(b, h.IP)
	b = appendString(b, h.Tag)
	b = binary.AppendVarint(b, int64(h.VhostCount))
	down := byte(0)
	if h.Down {
		down = 1
	}
	b = append(b, down)
	b = binary.AppendVarint(b, h.LastUpDown)
	return appendString(b, h.Hostname)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) str() string { return string(d.bytes(d.uvarint())) }

// count reads a length whose items take at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) addr() netip.Addr {
	n := d.byte()
	if n != 0 && n != 4 && n != 16 {
		d.fail()
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(d.bytes(uint64(n)))
	return ip
}

func (d *decoder) host() Host {
	h := Host{IP: d.addr(), Tag: d.str()}
	vc := d.varint()
	if vc < -1 || vc > MaxVhostCount {
		d.fail()
	}
	h.VhostCount = int(vc)
	switch d.byte() {
	case 0:
	case 1:
		h.Down = true
	default:
		d.fail()
	}
	h.LastUpDown = d.varint()
	h.Hostname = d.str()
	return h
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return fmt.Errorf("%w (%s)", d.err, what)
	}
	return nil
}

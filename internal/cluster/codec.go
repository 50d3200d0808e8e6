package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/usher-mail/usher/internal/director"
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

// Host flag bits. Commands (version 1) and version 1 snapshots carry only
// hostDown; version 2 snapshots carry the health state too.
const (
	hostDown       = 1 << 0
	hostHealthDown = 1 << 1
	hostHoldUp     = 1 << 2
	hostCauseShift = 3 // two bits of Cause
	hostFlagsV1    = hostDown
	hostFlagsV2    = hostDown | hostHealthDown | hostHoldUp | 3<<hostCauseShift
)

// appendHost writes h; ext adds the health state (snapshot version 2).
func appendHost(b []byte, h Host, ext bool) []byte {
	b = appendAddr(b, h.IP)
	b = appendString(b, h.Tag)
	b = binary.AppendVarint(b, int64(h.VhostCount))
	flags := byte(0)
	if h.Down {
		flags |= hostDown
	}
	if ext {
		if h.HealthDown {
			flags |= hostHealthDown
		}
		if h.HoldUp {
			flags |= hostHoldUp
		}
		flags |= byte(h.Cause) << hostCauseShift
	}
	b = append(b, flags)
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

// host reads what appendHost wrote; ext allows the version 2 flags.
func (d *decoder) host(ext bool) Host {
	h := Host{Host: director.Host{IP: d.addr(), Tag: d.str()}}
	vc := d.varint()
	if vc < -1 || vc > director.MaxVhostCount {
		d.fail()
	}
	h.VhostCount = int(vc)
	allowed := byte(hostFlagsV1)
	if ext {
		allowed = hostFlagsV2
	}
	flags := d.byte()
	if flags&^allowed != 0 || Cause(flags>>hostCauseShift) >= causeCount {
		d.fail()
	}
	h.Down = flags&hostDown != 0
	h.HealthDown = flags&hostHealthDown != 0
	h.HoldUp = flags&hostHoldUp != 0
	h.Cause = Cause(flags >> hostCauseShift)
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

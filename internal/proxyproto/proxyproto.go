// Package proxyproto reads the PROXY protocol header (HAProxy's "PROXY protocol", versions 1
// and 2) that a load balancer puts in front of a connection to carry the client's address, and
// writes version 2 headers for backends that expect one.
//
// Reading takes exactly the header's bytes from the connection and never more: an implicit-TLS
// client sends its ClientHello right behind the header, and those bytes belong to the TLS
// layer, which reads the raw socket (the relay splices it). Version 2 announces its length, so
// it is read in two exact reads; version 1 ends at a CRLF within 107 bytes and is read a byte
// at a time (the protocol's own advice for a receiver that must not over-read; only trusted
// load balancers reach this code, at most once per connection).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Header is what a PROXY header said.
type Header struct {
	Version int // 1 or 2
	// Local is true when the header carries no client address: v2 LOCAL (a health check by the
	// balancer itself), v1 UNKNOWN, or v2 with an unspecified family. The connection's own
	// addresses stand then.
	Local    bool
	Src, Dst netip.AddrPort // the client's address and the address it connected to

	// From v2 TLVs, where present.
	TLS        bool   // the client connected to the balancer over TLS (PP2_CLIENT_SSL)
	TLSVersion string // e.g. "TLSv1.3"
	TLSCN      string // the client certificate's common name
	Authority  string // the host name the client asked for (SNI)
	ALPN       string
}

// Errors; every one means "close the connection".
var (
	ErrNotProxy = errors.New("proxyproto: no PROXY protocol header")
	ErrInvalid  = errors.New("proxyproto: invalid PROXY protocol header")
)

const (
	v1Prefix = "PROXY "
	// v1MaxLen is the longest v1 header, CRLF included (the protocol's own bound).
	v1MaxLen = 107
	// maxV2Len bounds a v2 header's address and TLV part. The protocol allows 65535; the
	// balancers that speak it send a few hundred bytes at most (addresses, SSL and ALPN
	// TLVs), and a bound keeps a trusted but broken sender from parking 64 KiB per
	// connection.
	maxV2Len = 4096
)

// v2Sig is the v2 signature; its first bytes can never start a v1 header or any text protocol.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Read reads one PROXY header (v1 or v2) from r, exactly its bytes. The caller sets the
// deadline (Dovecot's haproxy_timeout) on the connection first.
func Read(r io.Reader) (Header, error) {
	var first [6]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading header: %w", err)
	}
	switch {
	case string(first[:]) == v1Prefix:
		return readV1(r)
	case bytes.Equal(first[:], v2Sig[:6]):
		return readV2(r, first[:])
	}
	return Header{}, ErrNotProxy
}

func readV1(r io.Reader) (Header, error) {
	line := make([]byte, 0, v1MaxLen)
	line = append(line, v1Prefix...)
	var b [1]byte
	for {
		if len(line) >= v1MaxLen {
			return Header{}, fmt.Errorf("%w: v1 line longer than %d bytes", ErrInvalid, v1MaxLen)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("proxyproto: reading v1 header: %w", err)
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
	}
	return ParseV1(line)
}

// ParseV1 parses a whole v1 line, "PROXY TCP4 src dst sport dport\r\n".
func ParseV1(line []byte) (Header, error) {
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok || !strings.HasPrefix(s, v1Prefix) || len(line) > v1MaxLen {
		return Header{}, fmt.Errorf("%w: v1 line not ended by CRLF", ErrInvalid)
	}
	f := strings.Split(s[len(v1Prefix):], " ")
	h := Header{Version: 1}
	switch f[0] {
	case "UNKNOWN":
		// The sender does not know the client: whatever follows is to be ignored.
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, fmt.Errorf("%w: v1 protocol %q", ErrInvalid, f[0])
	}
	if len(f) != 5 {
		return Header{}, fmt.Errorf("%w: v1 wants 5 fields, got %d", ErrInvalid, len(f))
	}
	src, err1 := netip.ParseAddr(f[1])
	dst, err2 := netip.ParseAddr(f[2])
	sp, err3 := parsePort(f[3])
	dp, err4 := parsePort(f[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Header{}, fmt.Errorf("%w: v1 %v", ErrInvalid, err)
	}
	want4 := f[0] == "TCP4"
	if src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return Header{}, fmt.Errorf("%w: v1 %s with addresses %s %s", ErrInvalid, f[0], f[1], f[2])
	}
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

// parsePort takes a decimal port as senders write it: digits only, no sign, no leading zero.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad port %q", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

func readV2(r io.Reader, first []byte) (Header, error) {
	var fixed [16]byte
	copy(fixed[:], first)
	if _, err := io.ReadFull(r, fixed[len(first):]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading v2 header: %w", err)
	}
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if n > maxV2Len {
		return Header{}, fmt.Errorf("%w: v2 length %d over %d", ErrInvalid, n, maxV2Len)
	}
	whole := make([]byte, 16+n)
	copy(whole, fixed[:])
	if _, err := io.ReadFull(r, whole[16:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading v2 header: %w", err)
	}
	return ParseV2(whole)
}

// v2 command, family and TLV codes (the protocol's section 2.2).
const (
	cmdLocal = 0x0
	cmdProxy = 0x1

	famUnspec = 0x0
	famInet   = 0x1
	famInet6  = 0x2
	famUnix   = 0x3

	protoUnspec = 0x0
	protoStream = 0x1

	tlvALPN      = 0x01
	tlvAuthority = 0x02
	tlvCRC32C    = 0x03
	tlvSSL       = 0x20
	subVersion   = 0x21
	subCN        = 0x22

	clientSSL = 0x01
)

// ParseV2 parses a whole v2 header (signature, fixed part, addresses and TLVs).
func ParseV2(b []byte) (Header, error) {
	if len(b) < 16 || !bytes.Equal(b[:12], v2Sig) {
		return Header{}, fmt.Errorf("%w: v2 signature", ErrInvalid)
	}
	if n := int(binary.BigEndian.Uint16(b[14:16])); n != len(b)-16 {
		return Header{}, fmt.Errorf("%w: v2 length %d for %d bytes", ErrInvalid, n, len(b)-16)
	}
	if b[12]>>4 != 2 {
		return Header{}, fmt.Errorf("%w: v2 version %d", ErrInvalid, b[12]>>4)
	}
	h := Header{Version: 2}
	fam, proto := b[13]>>4, b[13]&0xf
	rest := b[16:]
	switch b[12] & 0xf {
	case cmdLocal:
		// The balancer speaking for itself: addresses (if any) are to be ignored, TLVs too.
		h.Local = true
		return h, nil
	case cmdProxy:
	default:
		return Header{}, fmt.Errorf("%w: v2 command %d", ErrInvalid, b[12]&0xf)
	}
	if proto != protoStream && !(fam == famUnspec && proto == protoUnspec) {
		return Header{}, fmt.Errorf("%w: v2 transport %d is not a stream", ErrInvalid, proto)
	}
	var tlvs []byte
	switch fam {
	case famUnspec:
		h.Local = true
		tlvs = nil // the addresses part is unspecified, so TLVs cannot be located
	case famInet:
		if len(rest) < 12 {
			return Header{}, fmt.Errorf("%w: v2 INET addresses short", ErrInvalid)
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[0:4])), binary.BigEndian.Uint16(rest[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[4:8])), binary.BigEndian.Uint16(rest[10:12]))
		tlvs = rest[12:]
	case famInet6:
		if len(rest) < 36 {
			return Header{}, fmt.Errorf("%w: v2 INET6 addresses short", ErrInvalid)
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[0:16])).Unmap(), binary.BigEndian.Uint16(rest[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[16:32])).Unmap(), binary.BigEndian.Uint16(rest[34:36]))
		tlvs = rest[36:]
	case famUnix:
		// A client on a UNIX socket has no address to carry: the connection's stands.
		if len(rest) < 216 {
			return Header{}, fmt.Errorf("%w: v2 UNIX addresses short", ErrInvalid)
		}
		h.Local = true
		tlvs = rest[216:]
	default:
		return Header{}, fmt.Errorf("%w: v2 family %d", ErrInvalid, fam)
	}
	if err := h.readTLVs(b, tlvs); err != nil {
		return Header{}, err
	}
	return h, nil
}

// readTLVs reads the TLVs that usher uses and checks the CRC32C one, if sent, over the whole
// header with the checksum's own bytes taken as zero.
func (h *Header) readTLVs(whole, tlvs []byte) error {
	off := len(whole) - len(tlvs)
	for len(tlvs) > 0 {
		if len(tlvs) < 3 {
			return fmt.Errorf("%w: v2 TLV truncated", ErrInvalid)
		}
		typ, n := tlvs[0], int(binary.BigEndian.Uint16(tlvs[1:3]))
		if len(tlvs) < 3+n {
			return fmt.Errorf("%w: v2 TLV 0x%02x longer than the header", ErrInvalid, typ)
		}
		v := tlvs[3 : 3+n]
		switch typ {
		case tlvALPN:
			h.ALPN = string(v)
		case tlvAuthority:
			h.Authority = string(v)
		case tlvCRC32C:
			if n != 4 {
				return fmt.Errorf("%w: v2 CRC32C TLV of %d bytes", ErrInvalid, n)
			}
			c := make([]byte, len(whole))
			copy(c, whole)
			clear(c[off+3 : off+7])
			if crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(v) {
				return fmt.Errorf("%w: v2 CRC32C mismatch", ErrInvalid)
			}
		case tlvSSL:
			if err := h.readSSL(v); err != nil {
				return err
			}
		}
		tlvs = tlvs[3+n:]
		off += 3 + n
	}
	return nil
}

// readSSL reads PP2_TYPE_SSL: a client flags byte, a 4-byte verify result, then sub-TLVs.
func (h *Header) readSSL(v []byte) error {
	if len(v) < 5 {
		return fmt.Errorf("%w: v2 SSL TLV short", ErrInvalid)
	}
	h.TLS = v[0]&clientSSL != 0
	for sub := v[5:]; len(sub) > 0; {
		if len(sub) < 3 {
			return fmt.Errorf("%w: v2 SSL sub-TLV truncated", ErrInvalid)
		}
		typ, n := sub[0], int(binary.BigEndian.Uint16(sub[1:3]))
		if len(sub) < 3+n {
			return fmt.Errorf("%w: v2 SSL sub-TLV longer than its TLV", ErrInvalid)
		}
		switch typ {
		case subVersion:
			h.TLSVersion = string(sub[3 : 3+n])
		case subCN:
			h.TLSCN = string(sub[3 : 3+n])
		}
		sub = sub[3+n:]
	}
	return nil
}

// AppendV2 appends a v2 PROXY header carrying src -> dst to b, for a backend that listens
// with the PROXY protocol: with the SSL TLV (the client flag, and the version sub-TLV when
// tlsVersion is known) when the client came over TLS. Addresses of different families are
// both sent as IPv6, since a header has one family.
func AppendV2(b []byte, src, dst netip.AddrPort, tls bool, tlsVersion string) []byte {
	b = append(b, v2Sig...)
	b = append(b, 0x20|cmdProxy)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	var addrs []byte
	if s.Is4() && d.Is4() {
		b = append(b, famInet<<4|protoStream)
		addrs = append(addrs, s.AsSlice()...)
		addrs = append(addrs, d.AsSlice()...)
	} else {
		b = append(b, famInet6<<4|protoStream)
		s16, d16 := s.As16(), d.As16()
		addrs = append(addrs, s16[:]...)
		addrs = append(addrs, d16[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	if tls {
		ssl := []byte{clientSSL, 0, 0, 0, 0} // verify 0: no client certificate was checked
		if tlsVersion != "" {
			ssl = append(ssl, subVersion)
			ssl = binary.BigEndian.AppendUint16(ssl, uint16(len(tlsVersion)))
			ssl = append(ssl, tlsVersion...)
		}
		addrs = append(addrs, tlvSSL)
		addrs = binary.BigEndian.AppendUint16(addrs, uint16(len(ssl)))
		addrs = append(addrs, ssl...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

// AppendLocalV2 appends a v2 LOCAL header: the connection speaks for the sender itself (a
// health check), and the receiver keeps the connection's own addresses.
func AppendLocalV2(b []byte) []byte {
	b = append(b, v2Sig...)
	return append(b, 0x20|cmdLocal, famUnspec<<4|protoUnspec, 0, 0)
}

package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestV1(t *testing.T) {
	for _, tc := range []struct {
		in       string
		src, dst string
		local    bool
	}{
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n", src: "192.0.2.1:56324", dst: "198.51.100.2:143"},
		{in: "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", src: "[2001:db8::1]:1", dst: "[2001:db8::2]:65535"},
		{in: "PROXY UNKNOWN\r\n", local: true},
		{in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", local: true},
	} {
		h, err := Read(strings.NewReader(tc.in + "rest"))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if h.Version != 1 || h.Local != tc.local || (!tc.local && (h.Src != ap(tc.src) || h.Dst != ap(tc.dst))) {
			t.Fatalf("%q -> %+v", tc.in, h)
		}
	}
	for _, in := range []string{
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\n",   // LF alone
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",     // a field short
		"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",     // family mismatch
		"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",       // family mismatch
		"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",   // port range
		"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",      // leading zero
		"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",      // sign
		"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",      // double space
		"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",       // not TCP
		"PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n",         // zone
		"PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", // over 107 bytes
	} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

// Read takes exactly the header: what follows (a TLS ClientHello) is left to the next reader.
func TestReadTakesOnlyTheHeader(t *testing.T) {
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n"),
		AppendV2(nil, ap("192.0.2.1:5"), ap("198.51.100.2:993"), true, "TLSv1.3"),
		AppendLocalV2(nil),
	} {
		r := bytes.NewReader(append(append([]byte(nil), hdr...), "\x16\x03\x01hello"...))
		if _, err := Read(r); err != nil {
			t.Fatal(err)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "\x16\x03\x01hello" {
			t.Fatalf("left %q", rest)
		}
	}
}

func TestNotProxy(t *testing.T) {
	for _, in := range []string{"a LOGIN u p\r\n", "USER bob\r\n", "\r\n\r\nxx\r\n\r\n\r\n\r\n"} {
		if _, err := Read(strings.NewReader(in)); !errors.Is(err, ErrNotProxy) {
			t.Fatalf("%q: %v", in, err)
		}
	}
	if _, err := Read(strings.NewReader("PRO")); err == nil {
		t.Fatal("short input accepted")
	}
}

func TestV2RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		tls      bool
		version  string
	}{
		{"192.0.2.1:56324", "198.51.100.2:143", false, ""},
		{"[2001:db8::1]:1", "[2001:db8::2]:993", true, "TLSv1.3"},
		{"192.0.2.1:7", "[2001:db8::2]:993", false, ""}, // mixed: sent as IPv6, read back unmapped
		{"192.0.2.1:7", "198.51.100.2:143", true, ""},   // TLS of an unknown version (a balancer's)
	} {
		b := AppendV2(nil, ap(tc.src), ap(tc.dst), tc.tls, tc.version)
		h, err := ParseV2(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != 2 || h.Local || h.Src != ap(tc.src) || h.Dst != ap(tc.dst) || h.TLS != tc.tls || h.TLSVersion != tc.version {
			t.Fatalf("%+v -> %+v", tc, h)
		}
	}
	if h, err := ParseV2(AppendLocalV2(nil)); err != nil || !h.Local || h.Version != 2 {
		t.Fatalf("LOCAL: %+v, %v", h, err)
	}
}

// v2 builds a header by hand: command byte, family byte, body.
func v2(cmd, fam byte, body []byte) []byte {
	b := append([]byte(nil), v2Sig...)
	b = append(b, cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func tlv(typ byte, v []byte) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{typ}, uint16(len(v))), v...)
}

func TestV2TLVsAndCommands(t *testing.T) {
	inet := []byte{192, 0, 2, 1, 198, 51, 100, 2, 0, 80, 0, 143}
	ssl := append([]byte{clientSSL, 0, 0, 0, 0}, tlv(subVersion, []byte("TLSv1.2"))...)
	ssl = append(ssl, tlv(subCN, []byte("alice"))...)
	body := append(append([]byte(nil), inet...), tlv(tlvALPN, []byte("imap"))...)
	body = append(body, tlv(tlvAuthority, []byte("mail.example"))...)
	body = append(body, tlv(tlvSSL, ssl)...)
	body = append(body, tlv(0xe0, []byte("custom, ignored"))...)
	h, err := ParseV2(v2(0x21, 0x11, body))
	if err != nil {
		t.Fatal(err)
	}
	if h.Src != ap("192.0.2.1:80") || h.ALPN != "imap" || h.Authority != "mail.example" || !h.TLS || h.TLSVersion != "TLSv1.2" || h.TLSCN != "alice" {
		t.Fatalf("%+v", h)
	}

	// CRC32C: right checksum accepted, a flipped byte refused.
	withCRC := v2(0x21, 0x11, append(append([]byte(nil), inet...), tlv(tlvCRC32C, make([]byte, 4))...))
	sum := crc32.Checksum(withCRC, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(withCRC[len(withCRC)-4:], sum)
	if _, err := ParseV2(withCRC); err != nil {
		t.Fatalf("good CRC32C: %v", err)
	}
	withCRC[16]++
	if _, err := ParseV2(withCRC); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad CRC32C: %v", err)
	}

	if h, err := ParseV2(v2(0x20, 0x11, inet)); err != nil || !h.Local {
		t.Fatalf("LOCAL: %+v %v", h, err)
	}
	if h, err := ParseV2(v2(0x21, 0x00, nil)); err != nil || !h.Local {
		t.Fatalf("UNSPEC: %+v %v", h, err)
	}
	if h, err := ParseV2(v2(0x21, 0x31, make([]byte, 216))); err != nil || !h.Local {
		t.Fatalf("UNIX: %+v %v", h, err)
	}
	for name, b := range map[string][]byte{
		"version 1":     v2(0x11, 0x11, inet),
		"command 2":     v2(0x22, 0x11, inet),
		"datagram":      v2(0x21, 0x12, inet),
		"family 4":      v2(0x21, 0x41, inet),
		"short INET":    v2(0x21, 0x11, inet[:11]),
		"short INET6":   v2(0x21, 0x21, make([]byte, 35)),
		"TLV truncated": v2(0x21, 0x11, append(append([]byte(nil), inet...), 0x01, 0x00)),
		"TLV too long":  v2(0x21, 0x11, append(append([]byte(nil), inet...), 0x01, 0x00, 0x09, 'x')),
		"SSL short":     v2(0x21, 0x11, append(append([]byte(nil), inet...), tlv(tlvSSL, []byte{1, 0})...)),
	} {
		if _, err := ParseV2(b); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	big := v2(0x21, 0x11, make([]byte, maxV2Len+1))
	if _, err := Read(bytes.NewReader(big)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized v2: %v", err)
	}
}

// FuzzRead: no panic; an accepted header consumed no more than it announced, its addresses
// are valid unless Local, and a v2 header re-encoded from what was read parses to the same.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\nx"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, ap("192.0.2.1:5"), ap("[2001:db8::2]:993"), true, "TLSv1.3"))
	f.Add(v2(0x21, 0x11, append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}, tlv(tlvCRC32C, []byte{0, 0, 0, 0})...)))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		if h.Version == 1 && used > v1MaxLen || h.Version == 2 && used > 16+maxV2Len {
			t.Fatalf("read %d bytes for a v%d header", used, h.Version)
		}
		if h.Local {
			return
		}
		if !h.Src.IsValid() || !h.Dst.IsValid() {
			t.Fatalf("accepted without addresses: %+v", h)
		}
		if h.Version == 2 {
			back, err := ParseV2(AppendV2(nil, h.Src, h.Dst, h.TLS, h.TLSVersion))
			if err != nil || back.Src != h.Src || back.Dst != h.Dst || back.TLS != h.TLS || h.TLS && back.TLSVersion != h.TLSVersion {
				t.Fatalf("re-encoded %+v -> %+v, %v", h, back, err)
			}
		}
	})
}

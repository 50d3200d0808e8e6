package director

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// Expected values come from doveadm 2.3.19:
// doveadm -o director_username_hash=<template> director map -u Ab@Cd
func TestUserHashMatchesDoveadm(t *testing.T) {
	tests := []struct {
		template, user string
		want           uint32
	}{
		{"%Lu", "User@Example.com", 3045693125},
		{"%u", "Ab@Cd", 2264227170},
		{"%Lu", "Ab@Cd", 1947103684},
		{"%Uu", "Ab@Cd", 1904484374},
		{"x%", "Ab@Cd", 2647975009},
		{"x%L", "Ab@Cd", 2647975009},
		{"%Lu%", "Ab@Cd", 1947103684},
		{"", "Ab@Cd", 3558706393},
		{"%Ln@%Ld", "Ab@Cd", 1947103684},
		{"%%", "Ab@Cd", 198113732},
		{"%L%", "Ab@Cd", 198113732},
		{"%L{user}", "Ab@Cd", 1947103684},
		{"%L{username}x", "Ab@Cd", 4291301456},
		{"%{domain}%n", "Ab@Cd", 2414203909},
		{"a%{user}}", "Ab@Cd", 2891853845},
		{"%Ln", "User@Example.com", 3994143665},
		{"%{domain}", "User@Example.com", 3892709558},
	}
	for _, tc := range tests {
		got, err := UserHash(tc.template, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("UserHash(%q, %q) = %d, %v; want %d", tc.template, tc.user, got, err, tc.want)
		}
	}
}

func TestUserHashUnknownVariable(t *testing.T) {
	// doveadm: "Failed to expand director_username_hash=...: Unknown variable" for each.
	for _, tpl := range []string{"%Lx", "%{user", "%{}", "%{u}", "%{USER}", "%{lower:user}", "a%qb"} {
		if h, err := UserHash(tpl, "Ab@Cd"); !errors.Is(err, ErrExpand) {
			t.Errorf("UserHash(%q) = %d, %v; want ErrExpand", tpl, h, err)
		}
	}
}

func TestUserHashASCIIOnlyLowercase(t *testing.T) {
	// Dovecot lower-cases bytes A-Z only: "ÄB" hashes as "Äb", not "äb".
	got, _ := UserHash("%Lu", "ÄB")
	if want := hashString("Äb"); got != want {
		t.Errorf("got %d, want %d (hash of %q)", got, want, "Äb")
	}
	if got == hashString("äb") {
		t.Errorf("non-ASCII capital was lower-cased")
	}
}

func TestUserHashDomainSplit(t *testing.T) {
	// %n/%d split at the first '@'; %d is empty without one.
	a, _ := UserHash("%n|%d", "a@b@c")
	if want := hashString("a|b@c"); a != want {
		t.Errorf("a@b@c: got %d want %d", a, want)
	}
	b, _ := UserHash("%n|%d", "plain")
	if want := hashString("plain|"); b != want {
		t.Errorf("plain: got %d want %d", b, want)
	}
}

func TestDigestHashZeroBecomesOne(t *testing.T) {
	var sum [md5.Size]byte
	sum[4] = 0xff // only the first four bytes count
	if got := digestHash(sum); got != 1 {
		t.Errorf("digestHash(zero prefix) = %d, want 1", got)
	}
	sum[0] = 0x80
	if got := digestHash(sum); got != 0x80000000 {
		t.Errorf("digestHash = %#x, want 0x80000000 (big-endian)", got)
	}
}

func TestParseHashArg(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"3045693125", 3045693125, true},
		{"0", 0, true},
		{"007", 7, true},
		{"4294967295", 4294967295, true},
		{"4294967296", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"12a", 0, false},
		{"user@example.com", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseHashArg(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseHashArg(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzUserHash(f *testing.F) {
	f.Add("%Lu", "User@Example.com")
	f.Add("%{username}+%{domain}", "a@b@c")
	f.Add("%L%", "")
	f.Add("%{user", "x")
	f.Add("%U{domain}%%%n", "Zoë@Bücher.de")
	f.Fuzz(func(t *testing.T, template, user string) {
		h1, err1 := UserHash(template, user)
		h2, err2 := UserHash(template, user)
		if h1 != h2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("not deterministic")
		}
		if err1 == nil && h1 == 0 {
			t.Fatalf("hash 0 for %q %q", template, user)
		}
		if err1 != nil && !errors.Is(err1, ErrExpand) {
			t.Fatalf("error %v does not wrap ErrExpand", err1)
		}
		if u, _ := UserHash("%u", user); u != hashString(user) {
			t.Fatalf("%%u is not the raw user")
		}
		if l, _ := UserHash("%Lu", user); l != hashString(asciiLower(user)) {
			t.Fatalf("%%Lu fast path differs from lower-casing")
		}
		if l, _ := UserHash("%L{user}", user); l != hashString(asciiLower(user)) {
			t.Fatalf("%%L{user} differs from %%Lu")
		}
	})
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func testHosts() []Host {
	return []Host{
		{IP: ip("10.0.0.1"), VhostCount: 100},
		{IP: ip("10.0.0.2"), VhostCount: 50},
		{IP: ip("10.0.0.3"), VhostCount: 100, Down: true},
		{IP: ip("10.0.0.4"), VhostCount: 0},
		{IP: ip("10.0.0.5"), VhostCount: 100, Tag: "b"},
		{IP: ip("2001:db8::1"), VhostCount: 20, Tag: "b"},
		{IP: ip("10.0.0.6"), VhostCount: 100, Tag: "alldown", Down: true},
	}
}

// sampleHashes spreads hashes over the whole 32-bit space, including both ends.
func sampleHashes() []uint32 {
	hs := []uint32{0, 1, 1 << 31, ^uint32(0)}
	for i := uint32(0); i < 5000; i++ {
		hs = append(hs, i*858993+12345)
	}
	return hs
}

func TestRingPointsAreMD5OfIPAndIndex(t *testing.T) {
	r := NewRing([]Host{{IP: ip("10.0.0.1"), VhostCount: 8}}, "")
	sum := md5.Sum([]byte("10.0.0.1-7"))
	if want := binary.BigEndian.Uint32(sum[:4]); !slices.Contains(r.points, want) {
		t.Errorf("point of 10.0.0.1-7 (%d) missing from %v", want, r.points)
	}
	if r.Len() != 8 || !slices.IsSorted(r.points) {
		t.Errorf("want 8 sorted points, got %v", r.points)
	}
}

func TestRingDownAndZeroVhostContributeNothing(t *testing.T) {
	all := testHosts()
	upOnly := []Host{all[0], all[1]}
	full, ref := NewRing(all, ""), NewRing(upOnly, "")
	if full.Len() != 150 || ref.Len() != 150 {
		t.Fatalf("Len = %d, %d; want 150", full.Len(), ref.Len())
	}
	for _, h := range sampleHashes() {
		a, _ := full.Lookup(h)
		b, _ := ref.Lookup(h)
		if a != b {
			t.Fatalf("hash %d: %v with down/vhost-0 hosts, %v without", h, a, b)
		}
	}
}

func TestRingLookupFirstPointAtOrAfterHash(t *testing.T) {
	r := NewRing(testHosts(), "")
	owner := func(i int) netip.Addr { return r.addrs[r.owners[i]] }
	for i, p := range r.points {
		if got, _ := r.Lookup(p); got != owner(i) {
			t.Errorf("exact hit on point %d: got %v want %v", i, got, owner(i))
		}
		if p > 0 && (i == 0 || r.points[i-1] < p-1) {
			if got, _ := r.Lookup(p - 1); got != owner(i) {
				t.Errorf("just below point %d: got %v want %v", i, got, owner(i))
			}
		}
	}
	last := r.points[len(r.points)-1]
	if last == ^uint32(0) {
		t.Skip("last point is the maximum, no wrap to test")
	}
	if got, _ := r.Lookup(last + 1); got != owner(0) {
		t.Errorf("past the last point: got %v, want wrap to %v", got, owner(0))
	}
	if got, _ := r.Lookup(^uint32(0)); got != owner(0) {
		t.Errorf("max hash: got %v, want wrap to %v", got, owner(0))
	}
}

func TestRingEmpty(t *testing.T) {
	for _, r := range []*Ring{NewRing(nil, ""), NewRing(testHosts(), "alldown"), NewRing(testHosts(), "none")} {
		if got, ok := r.Lookup(42); ok {
			t.Errorf("empty ring gave %v", got)
		}
	}
}

func TestRingIndependentOfHostOrder(t *testing.T) {
	hosts := testHosts()
	rev := slices.Clone(hosts)
	slices.Reverse(rev)
	a, b := NewRing(hosts, "b"), NewRing(rev, "b")
	if !slices.Equal(a.points, b.points) {
		t.Fatal("points depend on host order")
	}
	for _, h := range sampleHashes() {
		x, _ := a.Lookup(h)
		y, _ := b.Lookup(h)
		if x != y {
			t.Fatalf("hash %d: %v vs %v", h, x, y)
		}
	}
}

func TestRingsTagsAreSeparate(t *testing.T) {
	rs := NewRings(testHosts())
	inB := map[netip.Addr]bool{ip("10.0.0.5"): true, ip("2001:db8::1"): true}
	seen := map[netip.Addr]bool{}
	for _, h := range sampleHashes() {
		d, ok := rs.Lookup("", h)
		if !ok || (d != ip("10.0.0.1") && d != ip("10.0.0.2")) {
			t.Fatalf("default tag gave %v, %v", d, ok)
		}
		b, ok := rs.Lookup("b", h)
		if !ok || !inB[b] {
			t.Fatalf("tag b gave %v, %v", b, ok)
		}
		seen[b] = true
		if x, ok := rs.Lookup("alldown", h); ok {
			t.Fatalf("tag with only down hosts gave %v", x)
		}
		if x, ok := rs.Lookup("nosuchtag", h); ok {
			t.Fatalf("unknown tag gave %v", x)
		}
	}
	if len(seen) != 2 {
		t.Errorf("tag b used %v, want both hosts", seen)
	}
	if rs.Ring("b") == nil || rs.Ring("nosuchtag") != nil {
		t.Error("Ring(tag) wrong")
	}
}

func TestRingLookupDoesNotAllocate(t *testing.T) {
	rs := NewRings(testHosts())
	allocs := testing.AllocsPerRun(1000, func() {
		rs.Lookup("b", 123456789)
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times", allocs)
	}
}

func BenchmarkRingsLookup(b *testing.B) {
	var hosts []Host
	for i := 1; i <= 50; i++ {
		hosts = append(hosts, Host{IP: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), VhostCount: 100})
	}
	rs := NewRings(hosts)
	h := uint32(0)
	for b.Loop() {
		h += 2654435761
		rs.Lookup("", h)
	}
}

func BenchmarkNewRing(b *testing.B) {
	hosts := testHosts()
	for b.Loop() {
		NewRing(hosts, "")
	}
}

func FuzzRingLookup(f *testing.F) {
	f.Add(uint32(0), uint8(3), uint16(100))
	f.Add(^uint32(0), uint8(1), uint16(1))
	f.Fuzz(func(t *testing.T, hash uint32, nhosts uint8, vhosts uint16) {
		var hosts []Host
		for i := 0; i < int(nhosts%8); i++ {
			hosts = append(hosts, Host{IP: netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), VhostCount: int(vhosts % 300)})
		}
		r := NewRing(hosts, "")
		got, ok := r.Lookup(hash)
		if ok != (r.Len() > 0) {
			t.Fatalf("ok=%v with %d points", ok, r.Len())
		}
		if !ok {
			return
		}
		// Reference: the first point >= hash (leftmost), else the first point. On an exact hit any
		// of several equal points is acceptable.
		idx, _ := slices.BinarySearch(r.points, hash)
		if idx == len(r.points) {
			idx = 0
		}
		if want := r.addrs[r.owners[idx]]; got != want && r.points[idx] != hash {
			t.Fatalf("hash %d: got %v want %v", hash, got, want)
		}
	})
}

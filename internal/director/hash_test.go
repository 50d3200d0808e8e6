package director

import (
	"crypto/md5"
	"errors"
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

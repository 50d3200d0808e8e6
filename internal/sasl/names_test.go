package sasl

import (
	"errors"
	"strings"
	"testing"
)

func TestXOAUTH2(t *testing.T) {
	n, err := XOAUTH2([]byte("user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"))
	if err != nil || n.Routed() != "someuser@example.com" {
		t.Fatalf("%+v %v", n, err)
	}
	for _, bad := range []string{"", "user=a\x01auth=Bearer x\x01", "auth=Bearer x\x01\x01", "user=a\x01\x01", "user=\x01auth=x\x01\x01", "junk\x01\x01"} {
		if _, err := XOAUTH2([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestOAUTHBEARER(t *testing.T) {
	// RFC 7628, section 4.1's example.
	n, err := OAUTHBEARER([]byte("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"))
	if err != nil || n.Routed() != "user@example.com" {
		t.Fatalf("%+v %v", n, err)
	}
	if n, err := OAUTHBEARER([]byte("y,a=a=2Cb=3Dc,\x01auth=Bearer x\x01\x01")); err != nil || n.User != "a,b=c" {
		t.Fatalf("escaped name: %+v %v", n, err)
	}
	for _, bad := range []string{
		"n,,\x01auth=Bearer x\x01\x01",       // no user: cannot be routed
		"n,a=u,\x01host=h\x01\x01",           // no auth
		"n,a=u,\x01auth=Bearer x\x01",        // one ^A at the end
		"x,a=u,\x01auth=Bearer x\x01\x01",    // flag
		"n,a=u=41,\x01auth=Bearer x\x01\x01", // bad saslname escape
		"n,b=u,\x01auth=Bearer x\x01\x01",    // not a=
		"n,a=u,\x01au th=Bearer x\x01\x01",   // key not ALPHA
		"\x01",                               // the client's answer to an error, not a first message
		"n,a=u,",                             // no pairs at all
	} {
		if _, err := OAUTHBEARER([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestSCRAM(t *testing.T) {
	// RFC 5802 and RFC 7677's examples.
	if n, err := SCRAM([]byte("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), false); err != nil || n.Routed() != "user" || n.Authz != "" {
		t.Fatalf("%+v %v", n, err)
	}
	if n, err := SCRAM([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), false); err != nil || n.User != "user" {
		t.Fatalf("%+v %v", n, err)
	}
	n, err := SCRAM([]byte("y,a=target,n=master=2C1,r=abc,x=ext"), false)
	if err != nil || n.User != "master,1" || n.Authz != "target" || n.Routed() != "target" {
		t.Fatalf("master login: %+v %v", n, err)
	}
	if _, err := SCRAM([]byte("p=tls-unique,,n=user,r=abc"), true); err != nil {
		t.Fatalf("-PLUS: %v", err)
	}
	for _, bad := range []string{
		"p=tls-unique,,n=user,r=abc", // channel binding on a non-PLUS mechanism
		"n,,n=,r=abc", "n,,n=user", "n,,r=abc,n=user", "n,,n=user,r=", "n,,m=ext,n=user,r=abc",
		"n,,n=us=er,r=abc", "n,n=user,r=abc", "n", "", "n,,n=a\x00b,r=x",
	} {
		if _, err := SCRAM([]byte(bad), false); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	if _, err := SCRAM([]byte("n,,n=user,r=abc"), true); !errors.Is(err, ErrMalformed) {
		t.Fatal("-PLUS without channel binding accepted")
	}
}

// FuzzNames: no panic, and an accepted message names a user that holds no NUL or line break
// and appears, encoded or not, in the message.
func FuzzNames(f *testing.F) {
	f.Add([]byte("user=a@b\x01auth=Bearer t\x01\x01"))
	f.Add([]byte("n,a=u=2C,\x01auth=Bearer t\x01\x01"))
	f.Add([]byte("y,a=t,n=m=3D,r=n,e=1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		check := func(n Name, err error) {
			if err != nil {
				return
			}
			u := n.Routed()
			if u == "" || strings.ContainsAny(u, "\x00\r\n") {
				t.Fatalf("%q -> user %q", in, u)
			}
		}
		check(XOAUTH2(in))
		check(OAUTHBEARER(in))
		check(SCRAM(in, false))
		check(SCRAM(in, true))
	})
}

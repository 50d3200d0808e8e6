package authclient

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	id, r, err := ParseReply("OK\t7\tuser=alice\tproxy\thost=10.0.0.5\tport=21143\tpass=a\x01tb=c")
	if err != nil || id != 7 || r.Kind != OK {
		t.Fatalf("%d %+v %v", id, r, err)
	}
	if v, ok := r.Get("user"); !ok || v != "alice" {
		t.Fatalf("user %q %v", v, ok)
	}
	if v, ok := r.Get("proxy"); !ok || v != "" || r.Fields[1].HasValue {
		t.Fatalf("bare flag proxy: %q %v %+v", v, ok, r.Fields[1])
	}
	if v, _ := r.Get("pass"); v != "a\tb=c" {
		t.Fatalf("escaped value: %q", v)
	}
	if _, ok := r.Get("nosuch"); ok {
		t.Fatal("absent field found")
	}
	if _, r, err := ParseReply("FAIL\t2\tuser=user001\ttemp\treason=try later"); err != nil || r.Kind != Fail {
		t.Fatalf("%+v %v", r, err)
	} else if v, _ := r.Get("reason"); v != "try later" {
		t.Fatalf("reason %q", v)
	}
	if _, r, err := ParseReply("CONT\t3\tVXNlcm5hbWU6"); err != nil || r.Kind != Cont || string(r.Data) != "Username:" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, r, err := ParseReply("CONT\t3\t"); err != nil || len(r.Data) != 0 {
		t.Fatalf("empty challenge: %+v %v", r, err)
	}
	for _, bad := range []string{"", "OK", "OK\t", "OK\t0", "OK\t01", "OK\t-1", "OK\t4294967296", "BOGUS\t1",
		"CONT\t1", "CONT\t1\t!!", "CONT\t1\ta\tb", "OK\t1\t=x", strings.Repeat("x", maxLine+1)} {
		if _, _, err := ParseReply(bad); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%.40q accepted: %v", bad, err)
		}
	}
}

// FuzzParseReply: no panic; an accepted reply has a known kind and a non-zero id, and a field
// name never holds a separator.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"OK\t1\tuser=a\tproxy", "FAIL\t9\ttemp", "CONT\t2\tYQ==", "OK\t1\tk=\x01t\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		id, r, err := ParseReply(line)
		if err != nil {
			return
		}
		if id == 0 || r.Kind < OK || r.Kind > Cont {
			t.Fatalf("%q -> %d %+v", line, id, r)
		}
		for _, fl := range r.Fields {
			if fl.Key == "" || strings.Contains(fl.Key, "=") && !strings.Contains(line, "\x01") {
				t.Fatalf("%q -> field %+v", line, fl)
			}
		}
	})
}

package login

import "testing"

// script answers asks from a fixed list of responses; nil stands for a refused response.
func script(t *testing.T, resps ...[]byte) Ask {
	return func(ir *string, challenge string) ([]byte, string, bool) {
		if ir != nil {
			return []byte(*ir), "", true
		}
		if len(resps) == 0 {
			t.Fatalf("unexpected challenge %q", challenge)
		}
		r := resps[0]
		resps = resps[1:]
		if r == nil {
			return nil, "NO refused", false
		}
		return r, "", true
	}
}

func TestReadCreds(t *testing.T) {
	ir := "u\x00p"
	tests := []struct {
		name  string
		mech  string
		ir    *string
		resps [][]byte
		want  Creds
		reply string
		end   SASLEnd
	}{
		{"plain", "PLAIN", nil, [][]byte{[]byte("\x00u1\x00pw")}, Creds{Mech: "PLAIN", User: "u1", Pass: "pw"}, "", SASLDone},
		{"plain master", "PLAIN", nil, [][]byte{[]byte("u2\x00m\x00pw")}, Creds{Mech: "PLAIN", Authz: "u2", User: "m", Pass: "pw"}, "", SASLDone},
		{"plain authz is user", "PLAIN", nil, [][]byte{[]byte("u1\x00u1\x00pw")}, Creds{Mech: "PLAIN", User: "u1", Pass: "pw"}, "", SASLDone},
		{"plain no user", "PLAIN", nil, [][]byte{[]byte("\x00\x00pw")}, Creds{Mech: "PLAIN"}, "", SASLMalformed},
		{"plain two parts", "PLAIN", &ir, nil, Creds{Mech: "PLAIN"}, "", SASLMalformed},
		{"plain refused", "PLAIN", nil, [][]byte{nil}, Creds{Mech: "PLAIN"}, "NO refused", SASLStopped},
		{"login", "LOGIN", nil, [][]byte{[]byte("u1"), []byte("pw")}, Creds{Mech: "LOGIN", User: "u1", Pass: "pw"}, "", SASLDone},
		{"login pass refused", "LOGIN", nil, [][]byte{[]byte("u1"), nil}, Creds{Mech: "LOGIN"}, "NO refused", SASLStopped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cr, reply, end := ReadCreds(tc.mech, tc.ir, script(t, tc.resps...))
			if end != tc.end || reply != tc.reply || (end == SASLDone && cr != tc.want) {
				t.Errorf("got %+v %q %v, want %+v %q %v", cr, reply, end, tc.want, tc.reply, tc.end)
			}
		})
	}
}

func TestLoginUser(t *testing.T) {
	if u := (Creds{User: "m", Authz: "u"}).LoginUser(); u != "u" {
		t.Errorf("master login routes %q", u)
	}
	if u := (Creds{User: "u"}).LoginUser(); u != "u" {
		t.Errorf("plain login routes %q", u)
	}
}

// One SASL response as each protocol's wire gives it: "*" aborts and "=" is the empty
// response in IMAP and POP3 (initial response or not); in ManageSieve's strings "*" aborts
// only as an answer to a challenge and "=" is plain (bad) base64.
func TestSASLAsk(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		name    string
		strings bool
		ir      *string
		read    string
		resp    string
		reply   string
	}{
		{"line", false, nil, "dXNlcg==", "user", ""},
		{"line abort", false, nil, "*", "", "aborted"},
		{"line empty", false, nil, "=", "", ""},
		{"line bad base64", false, nil, "!", "", "bad base64"},
		{"initial response abort", false, str("*"), "", "", "aborted"},
		{"initial response empty", false, str("="), "", "", ""},
		{"string", true, nil, "dXNlcg==", "user", ""},
		{"string abort", true, nil, "*", "", "aborted"},
		{"string initial response *", true, str("*"), "", "", "bad base64"},
		{"string =", true, nil, "=", "", "bad base64"},
	} {
		var challenged string
		s := SASL{
			Challenge: func(b64 string) error { challenged = b64; return nil },
			Read:      func() (string, string, bool) { return c.read, "", true },
			Aborted:   "aborted", BadBase64: "bad base64", Strings: c.strings,
		}
		resp, reply, ok := s.ask(c.ir, "Username:")
		if string(resp) != c.resp || reply != c.reply || ok != (c.reply == "") {
			t.Errorf("%s: got %q %q %v, want %q %q", c.name, resp, reply, ok, c.resp, c.reply)
		}
		if want := "VXNlcm5hbWU6"; c.ir == nil && challenged != want {
			t.Errorf("%s: challenge %q, want %q", c.name, challenged, want)
		}
	}
}

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

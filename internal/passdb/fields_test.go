package passdb

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFields(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Fields
	}{
		{"proxy=y port=21143", Fields{Proxy: true, Port: 21143}},
		// a boolean is set by its presence, whatever its value (Dovecot)
		{"proxy=n proxy_nopipelining=no", Fields{Proxy: true, NoPipelining: true}},
		{"proxy_maybe=y host=127.0.0.12 hostip=127.0.0.13", Fields{ProxyMaybe: true, Host: "127.0.0.12", HostIP: netip.MustParseAddr("127.0.0.13")}},
		{"proxy host=b2.example.org", Fields{Proxy: true, Host: "b2.example.org"}},
		{"ssl=yes", Fields{TLS: TLSImplicit}},
		{"ssl=any-cert", Fields{TLS: TLSImplicit, AnyCert: true}},
		{"starttls", Fields{TLS: TLSStartTLS}},
		{"starttls=any-cert", Fields{TLS: TLSStartTLS, AnyCert: true}},
		{"destuser=alice pass=secret master=admin proxy_mech=plain",
			Fields{DestUser: "alice", Pass: "secret", HasPass: true, Master: "admin", ProxyMech: "PLAIN"}},
		{"pass=", Fields{HasPass: true}},
		{"proxy_timeout=5", Fields{ProxyTimeout: 5 * time.Second}},
		{"proxy_timeout=500ms", Fields{ProxyTimeout: 500 * time.Millisecond}},
		{"proxy_timeout=2m", Fields{ProxyTimeout: 2 * time.Minute}},
		{"proxy_not_trusted director_tag=eu", Fields{NotTrusted: true, DirectorTag: "eu"}},
		{"nologin reason=Moved.", Fields{NoLogin: true, Reason: "Moved."}},
		{"user=bob user=carol", Fields{User: "carol"}},
		{"forward_tenant=acme forward_plan", Fields{Forward: []string{"tenant=acme", "plan="}}},
		{"uid=1000 userdb_home=/x source_ip=10.0.0.1 proxy_refresh=450", Fields{}},
	} {
		got, err := ParseFields(strings.Fields(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseFieldsRefusesBadValues(t *testing.T) {
	for _, in := range []string{
		"port=0", "port=65536", "port=x", "port=",
		"hostip=b2", "host=", "host=a/b", "host=" + strings.Repeat("a", 254),
		"ssl=no", "starttls=maybe",
		"proxy_mech=CRAM-MD5",
		"proxy_timeout=", "proxy_timeout=-1", "proxy_timeout=5h", "proxy_timeout=0", "proxy_timeout=99999999999",
		"director_tag=a\tb", "reason=a\r\nb OK", "user=", "user=a\nb", "destuser=a\x00b", "master=\x7f",
		"forward_=x", "forward_a=b\nc",
		"reason=" + strings.Repeat("x", maxFieldValue+1),
	} {
		if f, err := ParseFields([]string{in}); err == nil {
			t.Errorf("%q accepted: %+v", in, f)
		}
	}
	many := make([]string, maxFields+1)
	for i := range many {
		many[i] = "proxy"
	}
	if _, err := ParseFields(many); err == nil {
		t.Error("too many fields accepted")
	}
	// the error names the field, and never a password
	_, err := ParseFields([]string{"pass=hunter2", "port=99999"})
	if err == nil || !strings.Contains(err.Error(), "port=99999") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v", err)
	}
}

// FuzzParseFields: any reply parses or is refused without panicking, and what is accepted
// holds no control characters in what reaches a backend's command line or a client.
func FuzzParseFields(f *testing.F) {
	f.Add("proxy=y\tport=21143\thost=127.0.0.12")
	f.Add("ssl=any-cert\tdestuser=a\tmaster=m\tpass=p\tproxy_mech=plain")
	f.Add("nologin\treason=Moved.\tproxy_timeout=500ms\tforward_x=y")
	f.Fuzz(func(t *testing.T, in string) {
		fs, err := ParseFields(strings.Split(in, "\t"))
		if err != nil {
			return
		}
		for _, s := range []string{fs.Host, fs.DestUser, fs.Master, fs.User, fs.Reason, fs.DirectorTag} {
			if hasControl(s) || len(s) > maxFieldValue {
				t.Fatalf("accepted %q", s)
			}
		}
		if fs.Port < 0 || fs.Port > 65535 || fs.ProxyTimeout < 0 || fs.ProxyTimeout > time.Hour {
			t.Fatalf("accepted %+v", fs)
		}
	})
}

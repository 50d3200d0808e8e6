package dirimport

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/tabescape"
)

func TestParseHost(t *testing.T) {
	for _, c := range []struct {
		row  string
		want Host
		err  string
	}{
		{"127.0.0.11\t100\t3\t\tU\t0", Host{IP: netip.MustParseAddr("127.0.0.11"), Vhosts: 100}, ""},
		{"10.0.0.1\t7\t0\tblue\tD\t1700000000", Host{IP: netip.MustParseAddr("10.0.0.1"), Vhosts: 7, Tag: "blue", Down: true}, ""},
		{"::ffff:10.0.0.1\t5\t0", Host{IP: netip.MustParseAddr("10.0.0.1"), Vhosts: 5}, ""},
		{"10.0.0.1\t100", Host{}, "fields"},
		{"nohost\t100\t0", Host{}, "bad address"},
		{"10.0.0.1\t1001\t0", Host{}, "vhost"},
		{"10.0.0.1\t1\tx", Host{}, "user count"},
		{"10.0.0.1\t1\t0\ta b", Host{}, "tag"},
		{"10.0.0.1\t1\t0\t\tX", Host{}, "neither"},
	} {
		h, err := ParseHost(tabescape.Split(c.row))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.row, err, c.err)
			}
			continue
		}
		if err != nil || h != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.row, h, err, c.want)
		}
	}
}

func TestParseUser(t *testing.T) {
	u, err := ParseUser([]string{"931532427", "1796604965", "127.61.3.12"})
	if err != nil || u != (User{Hash: 931532427, Expire: 1796604965, IP: netip.MustParseAddr("127.61.3.12")}) {
		t.Fatalf("%+v %v", u, err)
	}
	for _, bad := range [][]string{{"1", "2"}, {"4294967296", "1", "1.2.3.4"}, {"1", "0", "1.2.3.4"}, {"1", "1", "x"}} {
		if _, err := ParseUser(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseRows(f *testing.F) {
	f.Add("127.0.0.11\t100\t3\t\tU\t0")
	f.Add("931532427\t1796604965\t127.61.3.12")
	f.Fuzz(func(t *testing.T, line string) {
		fields := tabescape.Split(line)
		if h, err := ParseHost(fields); err == nil {
			if !h.IP.IsValid() || h.Vhosts > 1000 || !validTag(h.Tag) {
				t.Fatalf("accepted %q as %+v", line, h)
			}
		}
		if u, err := ParseUser(fields); err == nil && (!u.IP.IsValid() || u.Expire <= 0) {
			t.Fatalf("accepted %q as %+v", line, u)
		}
	})
}

package pop3

import (
	"crypto/tls"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
)

// The protocol's own settings (its backend port) on top of
// login.Setup's shared part, for a plain and an implicit-TLS listener.
func TestSetup(t *testing.T) {
	s, _, err := config.Parse("test.conf", []byte("backend_pop3_port = 1110\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, btc := &tls.Config{ServerName: "server"}, &tls.Config{ServerName: "backend"}
	for _, l := range []*config.InetListener{{Name: "plain", Port: 1}, {Name: "tls", Port: 2, SSL: true}} {
		want := Config{Config: login.Setup(s, l, tc, btc, 1110)}

		if got := Setup(s, l, tc, btc); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", l.Name, got, want)
		}
	}
}

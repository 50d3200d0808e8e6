package logintest

import (
	"crypto/tls"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

// CheckSetup is the table test of a login front-end's Setup: conf is parsed as usher reads its
// config file, and for a plain and an implicit-TLS listener, with a server and a backend TLS
// config, setup returns the Config Setup built and the one expected.
func CheckSetup(t *testing.T, conf string, setup func(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) (got, want any)) {
	t.Helper()
	s := Settings(t, conf)
	tc, btc := &tls.Config{ServerName: "server"}, &tls.Config{ServerName: "backend"}
	for _, l := range []*config.InetListener{{Name: "plain", Port: 1}, {Name: "tls", Port: 2, SSL: true}} {
		if got, want := setup(s, l, tc, btc); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", l.Name, got, want)
		}
	}
}

// Settings parses conf as usher reads its config file.
func Settings(t *testing.T, conf string) *config.Settings {
	t.Helper()
	s, _, err := config.Parse("test.conf", []byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

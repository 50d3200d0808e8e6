package login

import (
	"crypto/tls"
	"reflect"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
)

// Every setting the shared part of a login front-end reads lands in its Config, with the
// listener's implicit TLS and the protocol's backend port; nothing else is set.
func TestSetup(t *testing.T) {
	s, _, err := config.Parse("test.conf", []byte(`
login_greeting = Mail here.
usher_login_timeout = 20 secs
usher_max_prelogin_commands = 12
backend_ssl = starttls
backend_proxy_protocol = v2
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, btc := &tls.Config{ServerName: "server"}, &tls.Config{ServerName: "backend"}
	plain, implicit := &config.InetListener{Name: "plain", Port: 1}, &config.InetListener{Name: "tls", Port: 2, SSL: true}
	base := Config{Greeting: "Mail here.", LoginTimeout: 20 * time.Second, MaxCommands: 12, BackendPort: 1143, BackendSSL: "starttls", BackendTLS: btc, BackendProxyProtocol: true}
	withTLS, implicitTLS := base, base
	withTLS.TLS = tc
	implicitTLS.TLS, implicitTLS.ImplicitTLS = tc, true
	for _, c := range []struct {
		name      string
		got, want Config
	}{
		{"plain", Setup(s, plain, tc, btc, 1143), withTLS},
		{"implicit TLS", Setup(s, implicit, tc, btc, 1143), implicitTLS},
		{"no server TLS", Setup(s, plain, nil, btc, 1143), base},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, c.got, c.want)
		}
	}
}

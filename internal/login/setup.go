package login

import (
	"crypto/tls"

	"github.com/usher-mail/usher/internal/config"
)

// Setup is the part of a login front-end's Config every protocol shares, from the settings and
// one of the service's listeners: tc is the server TLS (nil: none), btc the client TLS towards
// the backends, backendPort the protocol's backend port setting. The connection ceilings
// (Limiter) are shared per service and set by the caller; the rest are the defaults.
func Setup(s *config.Settings, l *config.InetListener, tc, btc *tls.Config, backendPort int) Config {
	return Config{
		Greeting: s.LoginGreeting, TLS: tc, ImplicitTLS: l.SSL,
		LoginTimeout: s.UsherLoginTimeout, MaxCommands: s.UsherMaxPreloginCommands,
		BackendPort: backendPort, BackendSSL: s.BackendSSL, BackendTLS: btc,
		BackendProxyProtocol: s.BackendProxyProtocol == "v2",
	}
}

package server

import (
	"crypto/tls"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/imap"
	"github.com/usher-mail/usher/internal/lmtp"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/pop3"
	"github.com/usher-mail/usher/internal/sieve"
)

// Each front-end's Config from the settings and one of its listeners: pure functions, so the
// mapping from a setting's name to the field it sets is table-tested (frontends_test.go).
// tc is the server TLS (nil: none), btc the client TLS towards backends. The connection
// ceilings (Limiter) are shared per service and set by the caller.

// loginProtocols maps each login service to the protocol that enables it in `protocols`.
var loginProtocols = map[string]string{"imap-login": "imap", "pop3-login": "pop3", "managesieve-login": "sieve"}

// loginConfig is the part of a login front-end's Config every protocol shares; backendPort is
// the protocol's backend port setting.
func loginConfig(s *config.Settings, l *config.InetListener, tc, btc *tls.Config, backendPort int) login.Config {
	return login.Config{
		Greeting: s.LoginGreeting, TLS: tc, ImplicitTLS: l.SSL,
		LoginTimeout: s.UsherLoginTimeout, MaxCommands: s.UsherMaxPreloginCommands,
		BackendPort: backendPort, BackendSSL: s.BackendSSL, BackendTLS: btc,
	}
}

func imapConfig(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) imap.Config {
	c := imap.Config{Config: loginConfig(s, l, tc, btc, s.BackendIMAPPort), IDRetain: s.ImapIDRetain}
	c.MaxLineLength = s.ImapMaxLineLength
	return c
}

func pop3Config(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) pop3.Config {
	return pop3.Config{Config: loginConfig(s, l, tc, btc, s.BackendPOP3Port)}
}

func sieveConfig(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) sieve.Config {
	return sieve.Config{Config: loginConfig(s, l, tc, btc, s.BackendSievePort)}
}

func lmtpConfig(s *config.Settings) lmtp.Config {
	return lmtp.Config{
		Greeting:       s.LoginGreeting,
		BackendPort:    s.BackendLMTPPort,
		UsernameFormat: s.AuthUsernameFormat,
		MaxRecipients:  s.UsherLMTPMaxRecipients,
	}
}

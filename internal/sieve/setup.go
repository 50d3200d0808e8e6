package sieve

import (
	"crypto/tls"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
)

// Setup is the Config of a managesieve-login listener from the settings.
func Setup(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) Config {
	return Config{Config: login.Setup(s, l, tc, btc, s.BackendSievePort)}
}

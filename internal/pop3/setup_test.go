package pop3

import (
	"crypto/tls"
	"testing"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// The protocol's backend port on top of login.Setup's shared part.
func TestSetup(t *testing.T) {
	logintest.CheckSetup(t, "backend_pop3_port = 1110\n", func(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) (got, want any) {
		return Setup(s, l, tc, btc), Config{Config: login.Setup(s, l, tc, btc, 1110)}
	})
}

package imap

import (
	"crypto/tls"
	"testing"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// IMAP's own settings (line length, ID retention, backend port) on top of login.Setup's part.
func TestSetup(t *testing.T) {
	conf := "imap_max_line_length = 32k\nimap_id_retain = yes\nbackend_imap_port = 1143\n"
	logintest.CheckSetup(t, conf, func(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) (got, want any) {
		c := Config{Config: login.Setup(s, l, tc, btc, 1143), IDRetain: true}
		c.MaxLineLength = 32 << 10
		return Setup(s, l, tc, btc), c
	})
}

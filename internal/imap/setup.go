package imap

import (
	"crypto/tls"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
)

// Setup is the Config of an imap-login listener from the settings (login.Setup's shared part
// plus IMAP's own line length and ID retention).
func Setup(s *config.Settings, l *config.InetListener, tc, btc *tls.Config) Config {
	c := Config{Config: login.Setup(s, l, tc, btc, s.BackendIMAPPort), IDRetain: s.ImapIDRetain}
	c.MaxLineLength = s.ImapMaxLineLength
	return c
}

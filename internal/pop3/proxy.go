package pop3

import (
	"bufio"

	"github.com/usher-mail/usher/internal/login"
)

// proxy relays the logged-in session (see login.Conn.Proxy).
func (c *conn) proxy(bs *backendSession) {
	c.Proxy(c.s.env, c.Log, login.Proxied{
		Info: login.SessionInfo{
			ID: c.SessionID, Service: Service, User: bs.user,
			Client: c.Remote, Local: c.Local, Backend: bs.addr,
		},
		Backend: bs.conn,
		OK:      []string{bs.okLine},
		Take: func() (client, backend *bufio.Reader) {
			client, backend = c.br, bs.br
			c.br, bs.br = nil, nil
			return client, backend
		},
	})
}

package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/doveadm"
	"github.com/usher-mail/usher/internal/sessions"
	"github.com/usher-mail/usher/internal/status"
)

// mountStatus serves the status page at /status on an API listener, behind
// the API's authentication. It reads what the API reads: this usher's
// director-admin protocol in-process and the proxied sessions of proxyList.
func (srv *Server) mountStatus(api *doveadm.Server) {
	src := &status.Source{
		Admin: func(ctx context.Context) (net.Conn, error) { return srv.admin.Pipe(), nil },
		Sessions: func() []status.Session {
			var out []status.Session
			for _, s := range (apiServices{srv}).ProxySessions() {
				out = append(out, status.Session{User: s.User, Service: s.Service, Backend: s.DestIP})
			}
			return out
		},
		Leader: func() string {
			addr, _ := srv.node.Leader()
			return addr
		},
		Events: srv.events,
		Now:    time.Now,
	}
	api.Mount("/status", func(ctx context.Context, accept string) (string, []byte) {
		return status.Render(src.Read(ctx), accept)
	})
}

// kickEvent records the API's session kicks (kick, proxy kick) for the
// status page; director kicks come through the admin protocol.
func (srv *Server) kickEvent(cmd string, kicked []sessions.Session) {
	if len(kicked) == 0 {
		return
	}
	users := sortedUsers(kicked)
	what := fmt.Sprintf("%s %s", cmd, strings.Join(users[:min(len(users), 5)], " "))
	if len(users) > 5 {
		what += fmt.Sprintf(" and %d more", len(users)-5)
	}
	srv.events.Add(status.Event{Time: time.Now(), Kind: "user", What: what,
		Result: fmt.Sprintf("%d session(s) closed", len(kicked))})
}

// reportHealth commits a health check verdict and keeps it as a recent
// event (on the checking director, which is the one committing it).
func (srv *Server) reportHealth(ctx context.Context, ip netip.Addr, down bool) error {
	err := srv.router.SetHealth(ctx, ip, down)
	verdict, result := "up", "OK"
	if down {
		verdict = "down"
	}
	if err != nil {
		result = err.Error()
	}
	srv.events.Add(status.Event{Time: time.Now(), Kind: "host", What: "health checks: " + ip.String() + " " + verdict, Result: result})
	return err
}

// recordEvents keeps the director-admin commands that change something (from
// the API, the CLI, doveadm or poolmon) for the status page.
func (srv *Server) recordEvents() {
	srv.admin.Observe(func(fields []string, reply string) {
		srv.events.Command(time.Now(), fields, reply)
	})
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/authservice"
	"github.com/usher-mail/usher/internal/passdb"
)

// A passdb driver usher does not run itself is refused at start, naming the setting that
// makes it work; with usher_auth_service set the sections are accepted and not built, and
// the service is kept across reloads that leave its sockets alone, replaced (the old one
// closed) when they change, and gone when the setting is.
func TestAuthServiceSelection(t *testing.T) {
	const sql = "passdb {\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}\n"
	if _, err := buildPassdb(parseSettings(t, sql)); err == nil || !strings.Contains(err.Error(), "test.conf:1: passdb: ") ||
		!strings.Contains(err.Error(), "usher_auth_service") {
		t.Fatalf("sql without usher_auth_service: %v", err)
	}
	const svc = "usher_auth_service = unix:/run/dovecot/auth-client\n"
	s := parseSettings(t, svc+sql+"passdb {\n  driver = passwd-file\n  args = /nonexistent\n}\n")
	if db, err := buildPassdb(s); db != nil || err != nil {
		t.Fatalf("with the service: %v %v", db, err)
	}
	srv := &Server{log: slog.New(slog.DiscardHandler)}
	srv.setAuthService(s)
	first := srv.authService.Load()
	if first == nil || first.Client().String() != "unix:/run/dovecot/auth-client" || first.Master().String() != "unix:/run/dovecot/auth-userdb" {
		t.Fatalf("service %+v", first)
	}
	srv.setAuthService(parseSettings(t, svc+"login_greeting = other\n"))
	if srv.authService.Load() != first {
		t.Fatal("an unrelated reload replaced the service")
	}
	srv.setAuthService(parseSettings(t, svc+"auth_socket_path = auth-master\n"))
	if second := srv.authService.Load(); second == first || second.Master().String() != "unix:/run/dovecot/auth-master" {
		t.Fatalf("after auth_socket_path changed: %+v", second)
	}
	if _, err := first.Authenticate(context.Background(), passdb.Request{Service: "imap", User: "u", Pass: "p", Mech: "PLAIN"}); !errors.Is(err, authservice.ErrUnavailable) {
		t.Errorf("the replaced service still answers: %v", err)
	}
	srv.setAuthService(parseSettings(t, ""))
	if srv.authService.Load() != nil {
		t.Fatal("service kept after the setting went")
	}
}

package login

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/usher-mail/usher/internal/passdb"
)

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    passdb.Reply
		err  error
		want Verdict
		user string
	}{
		{"proxy", passdb.Reply{OK: true, Fields: []string{"proxy=y", "port=21143"}}, nil, Proxy, "alice"},
		{"proxy_maybe", passdb.Reply{OK: true, Fields: []string{"proxy_maybe"}}, nil, Proxy, "alice"},
		{"user= rewrites", passdb.Reply{OK: true, User: "bob", Fields: []string{"proxy", "user=bob"}}, nil, Proxy, "bob"},
		{"no proxy: served locally by Dovecot", passdb.Reply{OK: true}, nil, Misconfig, "alice"},
		{"bad field", passdb.Reply{OK: true, Fields: []string{"proxy", "port=0"}}, nil, Misconfig, ""},
		{"proxy wins over nologin", passdb.Reply{OK: true, Fields: []string{"proxy", "nologin", "reason=Moved."}}, nil, Proxy, "alice"},
		{"nologin", passdb.Reply{OK: true, Fields: []string{"nologin", "reason=Moved."}}, nil, NoLogin, "alice"},
		{"wrong password", passdb.Reply{}, nil, AuthFailed, ""},
		{"temp", passdb.Reply{Temp: true}, nil, TempFailed, ""},
		{"lookup error", passdb.Reply{OK: true, Fields: []string{"proxy"}}, errors.New("down"), TempFailed, ""},
	} {
		got, v, err := ReadReply(tc.r, tc.err, "alice")
		if v != tc.want || tc.user != "" && got.User != tc.user {
			t.Errorf("%s: %v %q %v; want %v %q", tc.name, v, got.User, err, tc.want, tc.user)
		}
		if (v == Misconfig || v == TempFailed) && err == nil {
			t.Errorf("%s: no reason for the log", tc.name)
		}
	}
	if _, _, err := ReadReply(passdb.Reply{OK: true}, nil, "alice"); !errors.Is(err, ErrNoProxy) {
		t.Errorf("no proxy: %v", err)
	}
}

func TestTargetCreds(t *testing.T) {
	client := Creds{Mech: "LOGIN", User: "alice", Pass: "pw"}
	for _, tc := range []struct {
		name string
		t    *Target
		cr   Creds
		want Creds
	}{
		{"no target", nil, client, client},
		{"no fields", &Target{User: "alice"}, client, client},
		{"destuser", &Target{User: "alice", Fields: passdb.Fields{DestUser: "alice@b"}}, client,
			Creds{Mech: "LOGIN", User: "alice@b", Pass: "pw"}},
		{"user= is the backend's name too", &Target{User: "bob"}, Creds{User: "bob*admin", Pass: "pw"},
			Creds{User: "bob", Pass: "pw"}},
		{"master with pass", &Target{User: "bob", Fields: passdb.Fields{Master: "admin", Pass: "mpw", HasPass: true}},
			Creds{User: "bob*admin", Pass: "pw"}, Creds{Authz: "bob", User: "admin", Pass: "mpw"}},
		{"the client's own master login, destuser", &Target{User: "bob", Fields: passdb.Fields{DestUser: "bob@b"}},
			Creds{Authz: "bob", User: "admin", Pass: "pw"}, Creds{Authz: "bob@b", User: "admin", Pass: "pw"}},
	} {
		if got := tc.t.Creds(tc.cr); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if !(&Target{Fields: passdb.Fields{Master: "m"}}).SASL() || !(&Target{Fields: passdb.Fields{ProxyMech: "PLAIN"}}).SASL() || (*Target)(nil).SASL() {
		t.Error("SASL")
	}
}

func TestTargetPortAndTLS(t *testing.T) {
	tg := &Target{}
	if p := tg.Port(143, 993); p != 143 {
		t.Errorf("default port %d", p)
	}
	tg.TLS = passdb.TLSImplicit
	if p := tg.Port(143, 993); p != 993 {
		t.Errorf("ssl= without port: %d, want Dovecot's 993", p)
	}
	tg.Fields.Port = 10993
	if p := tg.Port(143, 993); p != 10993 {
		t.Errorf("port=: %d", p)
	}
	if ssl, cfg := (*Target)(nil).BackendTLS("starttls", nil); ssl != "starttls" || cfg != nil {
		t.Errorf("no target: %s %v", ssl, cfg)
	}
	ssl, cfg := (&Target{Fields: passdb.Fields{TLS: passdb.TLSStartTLS, AnyCert: true}}).BackendTLS("no", nil)
	if ssl != "starttls" || cfg == nil || !cfg.InsecureSkipVerify {
		t.Errorf("starttls=any-cert: %s %+v", ssl, cfg)
	}
	if ssl, _ := (&Target{Fields: passdb.Fields{TLS: passdb.TLSImplicit}}).BackendTLS("no", nil); ssl != "yes" {
		t.Errorf("ssl=yes: %s", ssl)
	}
}

type tagRouter struct {
	routed, confirmed []string
}

func (r *tagRouter) Route(_ context.Context, user string) (netip.Addr, error) {
	r.routed = append(r.routed, user)
	return netip.MustParseAddr("10.0.0.1"), nil
}
func (r *tagRouter) Confirm(user string, _ netip.Addr, _ bool) {
	r.confirmed = append(r.confirmed, user)
}
func (r *tagRouter) RouteTag(_ context.Context, user, tag string) (netip.Addr, error) {
	r.routed = append(r.routed, user+"@"+tag)
	return netip.MustParseAddr("10.0.0.2"), nil
}
func (r *tagRouter) ConfirmTag(user, tag string, _ netip.Addr, _ bool) {
	r.confirmed = append(r.confirmed, user+"@"+tag)
}

func TestTargetRoute(t *testing.T) {
	ctx := context.Background()
	r := &tagRouter{}
	pinned := &Target{User: "alice", Fields: passdb.Fields{Host: "127.0.0.12"}}
	ip, confirm, err := pinned.Route(ctx, r)
	confirm(true)
	if err != nil || ip != netip.MustParseAddr("127.0.0.12") || len(r.routed)+len(r.confirmed) != 0 {
		t.Errorf("host=: %v %v, router saw %v %v", ip, err, r.routed, r.confirmed)
	}
	hostip := &Target{User: "alice", Fields: passdb.Fields{Host: "b2.example.invalid", HostIP: netip.MustParseAddr("127.0.0.13")}}
	if ip, _, err := hostip.Route(ctx, r); err != nil || ip != netip.MustParseAddr("127.0.0.13") {
		t.Errorf("hostip=: %v %v", ip, err)
	}
	tagged := &Target{User: "alice", Fields: passdb.Fields{DirectorTag: "eu"}}
	ip, confirm, err = tagged.Route(ctx, r)
	confirm(true)
	if err != nil || ip != netip.MustParseAddr("10.0.0.2") || r.routed[0] != "alice@eu" || r.confirmed[0] != "alice@eu" {
		t.Errorf("director_tag: %v %v %v %v", ip, err, r.routed, r.confirmed)
	}
	// Dovecot's director hashes destuser over user (reference 4.2)
	r = &tagRouter{}
	dest := &Target{User: "alice", Fields: passdb.Fields{DestUser: "alice.real"}}
	_, confirm, err = dest.Route(ctx, r)
	confirm(true)
	if err != nil || len(r.routed) != 1 || r.routed[0] != "alice.real" || r.confirmed[0] != "alice.real" {
		t.Errorf("destuser: %v, router saw %v %v", err, r.routed, r.confirmed)
	}
}

// constPassdb answers every request with one reply.
type constPassdb passdb.Reply

func (p constPassdb) Authenticate(context.Context, passdb.Request) (passdb.Reply, error) {
	return passdb.Reply(p), nil
}

// The name routed is the login user (PLAIN's authzid when it has one) as auth_username_format
// makes it, unless the passdb's user= renames it: Dovecot's auth service names that user in
// its OK, and its director hashes it.
func TestAskPassdbNamesLoginUser(t *testing.T) {
	proxy := constPassdb{OK: true, Fields: []string{"proxy"}}
	for _, tc := range []struct {
		name   string
		db     constPassdb
		format string
		cr     Creds
		want   string
	}{
		{"as given", proxy, "", Creds{Mech: "PLAIN", User: "Alice", Pass: "p"}, "Alice"},
		{"formatted", proxy, "%Lu", Creds{Mech: "PLAIN", User: "Alice@Example.COM", Pass: "p"}, "alice@example.com"},
		{"authzid over authcid", proxy, "%Lu", Creds{Mech: "PLAIN", Authz: "User002", User: "user001", Pass: "p"}, "user002"},
		{"user= over both", constPassdb{OK: true, User: "carol", Fields: []string{"proxy"}}, "%Lu",
			Creds{Mech: "PLAIN", User: "Alice", Pass: "p"}, "carol"},
	} {
		env := &Env{Passdb: tc.db, UsernameFormat: tc.format}
		a := Attempt{Creds: tc.cr, Service: "imap", Log: slog.New(slog.DiscardHandler)}
		tg, v := askPassdb(env, a, func() *slog.Logger { return a.Log })
		if v != Proxy || tg.User != tc.want {
			t.Errorf("%s: verdict %v, user %q; want %q", tc.name, v, tg.User, tc.want)
		}
	}
}

package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
)

// setting binds a configuration name to its default (written as in a
// config file, which is also what $name expands to when unset) and to the
// code that stores a value in Settings.
type setting struct {
	name string
	def  string
	set  func(*Settings, string) error
}

// field makes a setter from a pointer to a Settings field and a value parser.
func field[T any](get func(*Settings) *T, parse func(string) (T, error)) func(*Settings, string) error {
	return func(s *Settings, v string) error {
		x, err := parse(v)
		if err != nil {
			return err
		}
		*get(s) = x
		return nil
	}
}

// settingTable lists every top-level setting usher interprets. It is built
// on each call so that no package state can be changed.
func settingTable() []setting {
	return append(dovecotSettings(), usherSettings()...)
}

// dovecotSettings are Dovecot 2.3 settings that usher honours, with
// Dovecot's defaults except base_dir and state_dir, which name usher's own
// directories, and mail_max_userip_connections: Dovecot's default of 10 is
// enforced by the backend, never by a Dovecot director, so usher enforces
// the setting only when the config sets it.
func dovecotSettings() []setting {
	return []setting{
		{"protocols", "imap pop3 lmtp", field(func(s *Settings) *[]string { return &s.Protocols }, asProtocols)},
		{"listen", "*, ::", field(func(s *Settings) *[]string { return &s.Listen }, asList)},
		{"base_dir", "/run/usher", field(func(s *Settings) *string { return &s.BaseDir }, asString)},
		{"state_dir", "/var/lib/usher", field(func(s *Settings) *string { return &s.StateDir }, asString)},
		{"ssl", "yes", field(func(s *Settings) *string { return &s.SSL }, oneOf("no", "yes", "required"))},
		{"ssl_cert", "", field(func(s *Settings) *string { return &s.SSLCert }, asString)},
		{"ssl_key", "", field(func(s *Settings) *string { return &s.SSLKey }, asString)},
		{"ssl_min_protocol", "TLSv1.2", field(func(s *Settings) *string { return &s.SSLMinProtocol },
			oneOf("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "ANY", "LATEST"))},
		{"disable_plaintext_auth", "yes", field(func(s *Settings) *bool { return &s.DisablePlaintextAuth }, parseBool)},
		{"login_trusted_networks", "", field(func(s *Settings) *[]netip.Prefix { return &s.LoginTrustedNetworks }, asNetworks)},
		{"login_greeting", "Dovecot ready.", field(func(s *Settings) *string { return &s.LoginGreeting }, asString)},
		{"auth_failure_delay", "2 secs", field(func(s *Settings) *time.Duration { return &s.AuthFailureDelay }, parseSeconds)},
		{"login_proxy_timeout", "30 secs", field(func(s *Settings) *time.Duration { return &s.LoginProxyTimeout }, ParseDuration)},
		{"login_proxy_max_reconnects", "3", field(func(s *Settings) *int { return &s.LoginProxyMaxReconnects }, asUint)},
		{"mail_max_userip_connections", "0", field(func(s *Settings) *int { return &s.MailMaxUserIPConnections }, asUint)},
		{"auth_username_format", "%Lu", field(func(s *Settings) *string { return &s.AuthUsernameFormat }, asString)},
		{"auth_username_chars", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
			field(func(s *Settings) *string { return &s.AuthUsernameChars }, asString)},
		{"doveadm_password", "", field(func(s *Settings) *string { return &s.DoveadmPassword }, asString)},
		{"doveadm_api_key", "", field(func(s *Settings) *string { return &s.DoveadmAPIKey }, asString)},
		{"doveadm_allowed_commands", "", field(func(s *Settings) *[]string { return &s.DoveadmAllowedCommands }, asCommaList)},
		{"director_servers", "", field(func(s *Settings) *[]string { return &s.DirectorServers }, asList)},
		{"director_mail_servers", "", field(func(s *Settings) *string { return &s.DirectorMailServers }, asString)},
		{"director_user_expire", "15 mins", field(func(s *Settings) *time.Duration { return &s.DirectorUserExpire }, parseSeconds)},
		{"director_username_hash", "%Lu", field(func(s *Settings) *string { return &s.DirectorUsernameHash }, asString)},
		{"director_user_kick_delay", "2 secs", field(func(s *Settings) *time.Duration { return &s.DirectorUserKickDelay }, parseSeconds)},
		{"director_max_parallel_moves", "100", field(func(s *Settings) *int { return &s.DirectorMaxParallelMoves }, asUint)},
		{"director_max_parallel_kicks", "100", field(func(s *Settings) *int { return &s.DirectorMaxParallelKicks }, asUint)},
		{"haproxy_trusted_networks", "", field(func(s *Settings) *[]netip.Prefix { return &s.HAProxyTrustedNetworks }, asNetworks)},
		{"haproxy_timeout", "3 secs", field(func(s *Settings) *time.Duration { return &s.HAProxyTimeout }, parseSeconds)},
		{"imap_max_line_length", "64 k", field(func(s *Settings) *int { return &s.ImapMaxLineLength }, asSize)},
		{"imap_id_retain", "no", field(func(s *Settings) *bool { return &s.ImapIDRetain }, parseBool)},
		{"default_client_limit", "1000", field(func(s *Settings) *int { return &s.DefaultClientLimit }, asUint)},
		{"default_process_limit", "100", field(func(s *Settings) *int { return &s.DefaultProcessLimit }, asUint)},
		{"ssl_client_ca_file", "", field(func(s *Settings) *string { return &s.SSLClientCAFile }, asString)},
		// Dovecot's lmtp asks this socket of the auth service for each recipient; usher
		// does the same when usher_auth_service is set.
		{"auth_socket_path", "auth-userdb", field(func(s *Settings) *string { return &s.AuthSocketPath }, asAuthSocketPath)},
	}
}

// usherSettings are usher's own additions, all in one place. Dovecot has no
// such settings; the backend_* ones replace what a Dovecot director learned
// from its passdb (the proxy port) and the usher_* ones bound what an
// unauthenticated client may do.
func usherSettings() []setting {
	return []setting{
		{"backend_imap_port", "143", field(func(s *Settings) *int { return &s.BackendIMAPPort }, parsePort)},
		{"backend_pop3_port", "110", field(func(s *Settings) *int { return &s.BackendPOP3Port }, parsePort)},
		{"backend_lmtp_port", "24", field(func(s *Settings) *int { return &s.BackendLMTPPort }, parsePort)},
		{"backend_sieve_port", "4190", field(func(s *Settings) *int { return &s.BackendSievePort }, parsePort)},
		{"backend_doveadm_port", "0", field(func(s *Settings) *int { return &s.BackendDoveadmPort }, parsePort)},
		{"backend_ssl", "no", field(func(s *Settings) *string { return &s.BackendSSL }, oneOf("no", "yes", "starttls"))},
		// Dovecot 2.3's proxy tells a backend the client's address in ID or
		// XCLIENT only; a PROXY v2 header carries it for every protocol, LMTP
		// included, to backends listening with haproxy = yes.
		{"backend_proxy_protocol", "no", field(func(s *Settings) *string { return &s.BackendProxyProtocol }, oneOf("no", "v2"))},
		{"usher_login_timeout", "60 secs", field(func(s *Settings) *time.Duration { return &s.UsherLoginTimeout }, ParseDuration)},
		{"usher_max_prelogin_commands", "30", field(func(s *Settings) *int { return &s.UsherMaxPreloginCommands }, asUint)},
		// Dovecot has no per-IP connection limit before login (its anvil
		// counts user and IP after it); a director facing the Internet needs one.
		{"usher_client_limit_per_ip", "1000", field(func(s *Settings) *int { return &s.UsherClientLimitPerIP }, asUint)},
		{"usher_lmtp_max_recipients", "1000", field(func(s *Settings) *int { return &s.UsherLMTPMaxRecipients }, asUint)},
		// Dovecot verifies a backend's certificate against the passdb's host
		// field; usher's backends are IPs, so the name is a setting.
		{"backend_ssl_name", "", field(func(s *Settings) *string { return &s.BackendSSLName }, asString)},
		// The ring of directors (docs/cluster.md). Dovecot's ring trusted its
		// network; usher's authenticates with a shared secret and can use TLS.
		{"director_ring_secret", "", field(func(s *Settings) *string { return &s.DirectorRingSecret }, asString)},
		{"director_ring_ssl", "no", field(func(s *Settings) *bool { return &s.DirectorRingSSL }, parseBool)},
		{"director_ring_ssl_ca", "", field(func(s *Settings) *string { return &s.DirectorRingSSLCA }, asString)},
		// Dovecot's request queue waits 30 s; usher makes it a setting.
		{"director_queue_timeout", "30 secs", field(func(s *Settings) *time.Duration { return &s.DirectorQueueTimeout }, ParseDuration)},
		// Built-in health checks (docs/cluster.md): what poolmon did, on
		// one director at a time.
		{"usher_health_check", "imap", field(func(s *Settings) *string { return &s.UsherHealthCheck }, oneOf("imap", "pop3", "lmtp", "none"))},
		{"usher_health_check_interval", "5 secs", field(func(s *Settings) *time.Duration { return &s.UsherHealthCheckInterval }, durationAtLeast(100*time.Millisecond))},
		{"usher_health_check_timeout", "3 secs", field(func(s *Settings) *time.Duration { return &s.UsherHealthCheckTimeout }, durationAtLeast(10*time.Millisecond))},
		{"usher_health_check_fall", "3", field(func(s *Settings) *int { return &s.UsherHealthCheckFall }, countInRange(1, 100))},
		{"usher_health_check_rise", "2", field(func(s *Settings) *int { return &s.UsherHealthCheckRise }, countInRange(1, 100))},
		{"usher_health_check_user", "", field(func(s *Settings) *string { return &s.UsherHealthCheckUser }, asCredential)},
		{"usher_health_check_password", "", field(func(s *Settings) *string { return &s.UsherHealthCheckPassword }, asCredential)},
		// A Dovecot director asked its own auth service; usher asks an existing one, over
		// the auth-client protocol its login processes speak (docs/config.md).
		{"usher_auth_service", "", field(func(s *Settings) *Endpoint { return &s.UsherAuthService }, asEndpoint)},
	}
}

func durationAtLeast(min time.Duration) func(string) (time.Duration, error) {
	return func(v string) (time.Duration, error) {
		d, err := ParseDuration(v)
		if err == nil && d < min {
			err = fmt.Errorf("Invalid time interval: %s (minimum %v)", v, min)
		}
		return d, err
	}
}

func countInRange(lo, hi uint64) func(string) (int, error) {
	return func(v string) (int, error) {
		n, err := parseUint(v, hi)
		if err == nil && uint64(n) < lo {
			err = fmt.Errorf("Invalid number: %s (minimum %d)", v, lo)
		}
		return n, err
	}
}

// asCredential refuses what cannot go into an IMAP or POP3 command line.
// The line end of a `<file` value written by echo is not part of it.
func asCredential(v string) (string, error) {
	v = strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r")
	if strings.ContainsAny(v, "\r\n\x00") || len(v) > 1024 {
		return "", errors.New("must be at most 1024 bytes without CR, LF or NUL")
	}
	return v, nil
}

func lookupSetting(name string) (setting, bool) {
	for _, s := range settingTable() {
		if s.name == name {
			return s, true
		}
	}
	return setting{}, false
}

// variableDefault is what $name expands to when the file has not set name:
// the default of a setting usher knows, or "" for another Dovecot setting
// (whose default usher does not track).
func variableDefault(name string) (string, bool) {
	if s, ok := lookupSetting(name); ok {
		return s.def, true
	}
	return "", isDovecotSetting(name)
}

func asString(v string) (string, error) { return v, nil }

// asList splits on commas and white space, as Dovecot does for listen and
// similar list settings.
func asList(v string) ([]string, error) {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }), nil
}

// asCommaList splits on commas only: the entries of
// doveadm_allowed_commands contain spaces ("director status"). Dovecot
// compares each entry untrimmed, so "a, b" never allows "b" there; usher
// trims the spaces around an entry and folds runs of spaces inside it.
func asCommaList(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.Join(strings.Fields(f), " "); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

func asProtocols(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Fields(v) {
		switch p {
		case "none":
		case "imap", "pop3", "lmtp", "sieve":
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		default:
			return nil, fmt.Errorf("Unknown protocol: %s", p)
		}
	}
	return out, nil
}

// asNetworks reads a list of IP networks; a bare address is a network of
// one (/32 or /128).
func asNetworks(v string) ([]netip.Prefix, error) {
	fields, _ := asList(v)
	out := make([]netip.Prefix, 0, len(fields))
	for _, f := range fields {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("Invalid network: %s", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func asUint(v string) (int, error) { return parseUint(v, math.MaxUint32) }

func asSize(v string) (int, error) {
	n, err := ParseSize(v)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt {
		return 0, fmt.Errorf("Invalid size: %s: too large", v)
	}
	return int(n), nil
}

func oneOf(choices ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		if slices.Contains(choices, v) {
			return v, nil
		}
		return "", fmt.Errorf("Invalid value %q (use %s)", v, strings.Join(choices, ", "))
	}
}

package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Settings is a parsed configuration. Fields keep Dovecot's setting names
// (in Go case) and Dovecot 2.3's defaults, except where the comment says
// otherwise; usher's own settings come last.
type Settings struct {
	Protocols                []string // protocols; "none" is the empty list
	Listen                   []string // listen, split on commas and spaces
	BaseDir                  string   // base_dir; default /run/usher
	StateDir                 string   // state_dir; default /var/lib/usher
	SSL                      string   // ssl: no, yes or required
	SSLCert                  string   // ssl_cert: the certificate itself (use "<path")
	SSLKey                   string   // ssl_key: the key itself (use "<path"); never log it
	SSLMinProtocol           string   // ssl_min_protocol
	DisablePlaintextAuth     bool     // disable_plaintext_auth
	LoginTrustedNetworks     []netip.Prefix
	LoginGreeting            string
	LoginProxyTimeout        time.Duration
	LoginProxyMaxReconnects  int           // login_proxy_max_reconnects: backend connect retries, 1 s apart
	AuthFailureDelay         time.Duration // auth_failure_delay: a failed login is answered this late
	MailMaxUserIPConnections int
	AuthUsernameFormat       string
	AuthUsernameChars        string // auth_username_chars: bytes a login name may hold; "" allows all
	DoveadmPassword          string // never log it
	DoveadmAPIKey            string // never log it
	DoveadmAllowedCommands   []string
	DirectorServers          []string
	DirectorMailServers      string // raw; internal/director parses ranges and @tags
	DirectorUserExpire       time.Duration
	DirectorUsernameHash     string
	DirectorUserKickDelay    time.Duration
	DirectorMaxParallelMoves int
	DirectorMaxParallelKicks int
	HAProxyTrustedNetworks   []netip.Prefix
	HAProxyTimeout           time.Duration
	ImapMaxLineLength        int    // bytes
	ImapIDRetain             bool   // imap_id_retain: pass the client's ID parameters on to the backend
	DefaultClientLimit       int    // default_client_limit: a service's client_limit when it sets none
	DefaultProcessLimit      int    // default_process_limit: a service's process_limit when it sets none
	SSLClientCAFile          string // ssl_client_ca_file: path of the CAs backends' certificates are verified against
	AuthSocketPath           string // auth_socket_path: the auth service's auth-master socket, for LMTP; see AuthMasterEndpoint

	// usher's own settings; see usherSettings for their names and defaults.
	BackendIMAPPort          int
	BackendPOP3Port          int
	BackendLMTPPort          int
	BackendSievePort         int
	BackendDoveadmPort       int    // 0: the backends have no doveadm HTTP API
	BackendSSL               string // no, yes (implicit TLS) or starttls
	BackendProxyProtocol     string // no, or v2: a PROXY v2 header opens every backend connection
	UsherLoginTimeout        time.Duration
	UsherMaxPreloginCommands int
	DirectorRingSecret       string // director_ring_secret; never log it
	DirectorRingSSL          bool   // director_ring_ssl: TLS on the ring port
	DirectorRingSSLCA        string // director_ring_ssl_ca: PEM of the CA peers are verified against ("<path")
	DirectorQueueTimeout     time.Duration
	UsherHealthCheck         string // imap, pop3, lmtp or none
	UsherHealthCheckInterval time.Duration
	UsherHealthCheckTimeout  time.Duration
	UsherHealthCheckFall     int
	UsherHealthCheckRise     int
	UsherHealthCheckUser     string
	UsherHealthCheckPassword string   // never log it
	UsherClientLimitPerIP    int      // connections of one service from one client IP; 0: no limit
	UsherLMTPMaxRecipients   int      // RCPT commands per LMTP transaction
	BackendSSLName           string   // name backends' certificates are verified against; "": the backend's IP
	UsherAuthService         Endpoint // usher_auth_service: the Dovecot auth service that answers every login; none: usher's own passdb

	// Services holds Dovecot's default services (imap-login, pop3-login,
	// managesieve-login, lmtp, doveadm, director) merged with the file's
	// service blocks, in that order.
	Services []Service

	// Passdbs are the passdb sections in file order; empty means usher checks no passwords.
	Passdbs []Passdb
}

// Load reads the configuration file at path, following !include (with glob
// patterns) and <file values on disk. Warnings are returned even when the
// file is rejected, so they can be shown along with the error.
func Load(path string) (*Settings, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &Error{File: path, Msg: "Can't open configuration: " + pathErr(err).Error()}
	}
	return build(&parser{readFile: os.ReadFile, glob: filepath.Glob}, path, data)
}

// Parse parses data as if it were the file name. readFile serves !include
// and <file (nil: no file exists); glob patterns are taken as literal names.
func Parse(name string, data []byte, readFile func(string) ([]byte, error)) (*Settings, []Warning, error) {
	return build(&parser{readFile: readFile}, name, data)
}

// Defaults returns the settings of an empty configuration file.
func Defaults() *Settings {
	s := &Settings{Services: defaultServices()}
	for _, def := range settingTable() {
		if err := def.set(s, def.def); err != nil {
			panic("config: bad default for " + def.name + ": " + err.Error())
		}
	}
	return s
}

func build(p *parser, name string, data []byte) (*Settings, []Warning, error) {
	root, warns, err := p.parse(name, data)
	if err != nil {
		return nil, warns, err
	}
	a := &applier{s: Defaults(), warns: warns}
	if err := a.apply(root); err != nil {
		return nil, a.warns, err
	}
	return a.s, a.warns, nil
}

// ConnLimit is how many connections service svc serves at once: its
// client_limit times its process_limit (default_client_limit and
// default_process_limit when it sets none), what a Dovecot service in
// high-performance mode (service_count = 0) could hold. usher has one
// process, so the product is all that is left of the two settings.
func (s *Settings) ConnLimit(svc *Service) int {
	c, p := svc.ClientLimit, svc.ProcessLimit
	if c <= 0 {
		c = s.DefaultClientLimit
	}
	if p <= 0 {
		p = s.DefaultProcessLimit
	}
	return max(c, 1) * max(p, 1)
}

// Service returns the service with the given name.
func (s *Settings) Service(name string) (*Service, bool) {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i], true
		}
	}
	return nil, false
}

// Listener returns the named inet_listener of a service ("" names an
// unnamed one).
func (s *Settings) Listener(service, name string) (*InetListener, bool) {
	svc, ok := s.Service(service)
	if !ok {
		return nil, false
	}
	for i := range svc.InetListeners {
		if svc.InetListeners[i].Name == name {
			return &svc.InetListeners[i], true
		}
	}
	return nil, false
}

// applier turns the raw tree into Settings.
type applier struct {
	s     *Settings
	warns []Warning
}

func (a *applier) warn(n *Node, format string, args ...any) {
	e := errAt(n.File, n.Line, format, args...)
	a.warns = append(a.warns, Warning{File: e.File, Line: e.Line, Msg: e.Msg})
}

func (a *applier) apply(root *Node) error {
	var expire *Node
	for _, n := range root.Children {
		switch {
		case n.Section && n.Key == "service":
			if err := a.service(n); err != nil {
				return err
			}
		case n.Section && n.Key == "passdb":
			a.passdbSection(n)
		case n.Section && isDovecotSection(n.Key):
			a.warn(n, "section %s is not used by usher; its contents are ignored", sectionName(n))
		case n.Section:
			return errAt(n.File, n.Line, "Unknown section: %s", n.Key)
		default:
			if err := a.setting(n); err != nil {
				return err
			}
			if n.Key == "director_user_expire" {
				expire = n
			}
		}
	}
	// Dovecot checks the final value, so an early low value that a later
	// line overrides is fine.
	if expire != nil && a.s.DirectorUserExpire < 10*time.Second {
		return errAt(expire.File, expire.Line, "director_user_expire is too low (minimum 10 secs)")
	}
	return nil
}

func (a *applier) setting(n *Node) error {
	if def, ok := lookupSetting(n.Key); ok {
		if err := def.set(a.s, n.Value); err != nil {
			return errAt(n.File, n.Line, "%s: %v", n.Key, err)
		}
		return nil
	}
	if isDovecotSetting(n.Key) {
		a.warn(n, "%s is a Dovecot setting that usher does not use; ignored", n.Key)
		return nil
	}
	return errAt(n.File, n.Line, "Unknown setting: %s", n.Key)
}

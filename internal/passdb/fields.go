package passdb

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Fields are the passdb reply fields a Dovecot login process acts on when it proxies
// (reference 4.4 and 6.1), typed. ParseFields reads them from Reply.Fields.
type Fields struct {
	// Proxy: the login goes to a backend. ProxyMaybe is the same unless the backend is
	// usher itself. A reply with neither is one Dovecot would serve locally.
	Proxy, ProxyMaybe bool
	// Host is host=: the backend named by the passdb, bypassing the director (an IP, or a
	// name resolved at login); HostIP is hostip=, the address to use for Host.
	Host   string
	HostIP netip.Addr
	Port   int // port=; 0 when not given
	// TLS is ssl= (implicit TLS) or starttls=; AnyCert skips the certificate check.
	TLS     TLSMode
	AnyCert bool
	// DestUser is destuser=: the name to log in with on the backend.
	DestUser string
	// Pass is pass= (HasPass says it was given): the password for the backend.
	Pass    string
	HasPass bool
	// Master is master=: log in on the backend as this master user for DestUser.
	Master string
	// ProxyMech is proxy_mech=, upper-case: the SASL mechanism towards the backend.
	ProxyMech    string
	ProxyTimeout time.Duration // proxy_timeout; 0 when not given
	NoPipelining bool          // proxy_nopipelining
	NotTrusted   bool          // proxy_not_trusted: no ID/XCLIENT towards the backend
	DirectorTag  string        // director_tag: the tag's ring routes the user
	// NoLogin refuses the login, with Reason for the client when given.
	NoLogin bool
	Reason  string
	// User is user=: the name the passdb settled on, routed and logged in with.
	User string
	// Forward are the forward_* fields as "key=value", without the prefix.
	Forward []string
}

// TLSMode is how the proxy reaches the backend, when the passdb says.
type TLSMode int

const (
	TLSUnset    TLSMode = iota // no ssl/starttls field: backend_ssl decides
	TLSImplicit                // ssl=yes|any-cert
	TLSStartTLS                // starttls[=any-cert]
)

// Bounds on what a passdb may hand the login pipeline: names are routed, logged and sent
// to a backend, the reason is shown to the client.
const (
	maxFields     = 256
	maxFieldValue = 1024
)

// ProxyMechs are the SASL mechanisms usher's proxies speak to a backend.
var ProxyMechs = []string{"PLAIN"}

// ParseFields reads a passdb reply's fields ("key=value" or a bare "key") with Dovecot's
// semantics: a boolean field is set by its presence, whatever its value (proxy=n still
// proxies, as in Dovecot); the last of a repeated key wins; keys usher does not act on are
// ignored. Bad values are errors naming the field, and the login then fails as a
// configuration error.
func ParseFields(raw []string) (Fields, error) {
	var f Fields
	if len(raw) > maxFields {
		return f, fmt.Errorf("passdb reply has %d fields, more than %d", len(raw), maxFields)
	}
	for _, kv := range raw {
		k, v, _ := strings.Cut(kv, "=")
		if len(v) > maxFieldValue {
			return f, fmt.Errorf("passdb field %s: value longer than %d bytes", printable(k), maxFieldValue)
		}
		if err := f.set(k, v); err != nil {
			return f, fmt.Errorf("passdb field %s=%s: %w", printable(k), printable(v), err)
		}
	}
	return f, nil
}

func (f *Fields) set(k, v string) error {
	if rest, ok := strings.CutPrefix(k, "forward_"); ok {
		if rest == "" || hasControl(rest) || hasControl(v) {
			return errors.New("a forward field needs a name and no control characters")
		}
		f.Forward = append(f.Forward, rest+"="+v)
		return nil
	}
	var err error
	switch k {
	case "proxy":
		f.Proxy = true
	case "proxy_maybe", "director_proxy_maybe":
		f.ProxyMaybe = true
	case "host":
		err = checkHost(v)
		f.Host = v
	case "hostip":
		f.HostIP, err = netip.ParseAddr(v)
		if err != nil {
			err = errors.New("not an IP address")
		}
	case "port":
		f.Port, err = strconv.Atoi(v)
		if err != nil || f.Port < 1 || f.Port > 65535 {
			err = errors.New("not a port number (1-65535)")
		}
	case "ssl", "starttls":
		f.TLS = TLSImplicit
		if k == "starttls" {
			f.TLS = TLSStartTLS
		}
		switch strings.ToLower(v) {
		case "", "y", "yes", "1":
		case "any-cert":
			f.AnyCert = true
		default:
			// Dovecot would use TLS for ssl=no too; refusing says so instead of surprising.
			return errors.New(`want yes or any-cert (any value enables TLS in Dovecot; remove the field for none)`)
		}
	case "destuser":
		err = checkName(v)
		f.DestUser = v
	case "pass":
		f.Pass, f.HasPass = v, true
	case "master":
		// Dovecot ignores an empty master field.
		err = checkName(v)
		f.Master = v
	case "proxy_mech":
		f.ProxyMech = strings.ToUpper(v)
		if !contains(ProxyMechs, f.ProxyMech) {
			err = fmt.Errorf("usher's proxy speaks %s to backends", strings.Join(ProxyMechs, ", "))
		}
	case "proxy_timeout":
		f.ProxyTimeout, err = parseTimeout(v)
	case "proxy_nopipelining":
		f.NoPipelining = true
	case "proxy_not_trusted":
		f.NotTrusted = true
	case "director_tag":
		if hasControl(v) || strings.ContainsAny(v, " \t") {
			err = errors.New("a tag has no spaces or control characters")
		}
		f.DirectorTag = v
	case "nologin":
		f.NoLogin = true
	case "reason":
		// shown to the client on its own line
		if hasControl(v) {
			err = errors.New("control characters in the client's text")
		}
		f.Reason = v
	case "user":
		if v == "" {
			return errors.New("an empty user name")
		}
		err = checkName(v)
		f.User = v
	}
	return err
}

// parseTimeout reads proxy_timeout: a plain number is seconds (Dovecot's older form), or a
// number with a unit (ms, s, m, as in "500ms", "10 s", "2 mins").
func parseTimeout(v string) (time.Duration, error) {
	bad := errors.New("want seconds, or a number with ms, s or m")
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(v[:i], 10, 32)
	if err != nil {
		return 0, bad
	}
	unit := time.Second
	switch strings.ToLower(strings.TrimSpace(v[i:])) {
	case "", "s", "sec", "secs", "second", "seconds":
	case "ms", "msec", "msecs":
		unit = time.Millisecond
	case "m", "min", "mins", "minute", "minutes":
		unit = time.Minute
	default:
		return 0, bad
	}
	d := time.Duration(n) * unit
	if d <= 0 || d > time.Hour {
		return 0, errors.New("want more than 0 and at most an hour")
	}
	return d, nil
}

// checkHost accepts an IP address or a DNS name.
func checkHost(v string) error {
	if _, err := netip.ParseAddr(v); err == nil {
		return nil
	}
	if v == "" || len(v) > 253 {
		return errors.New("not an IP address or host name")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return errors.New("not an IP address or host name")
		}
	}
	return nil
}

// checkName bounds a user name a passdb hands over: it is routed, logged and sent to a
// backend on a command line.
func checkName(v string) error {
	if hasControl(v) {
		return errors.New("control characters in a user name")
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// printable quotes s for an error message, shortened: a passdb's bytes go to the log.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, " ") {
		return s
	}
	return q
}

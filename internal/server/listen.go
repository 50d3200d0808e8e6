package server

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/netx"
)

// listenAddrs turns a listener's addresses (or the global `listen`) into
// host:port strings. "*" is every IPv4 address and "::" every IPv6 one;
// when both are given one dual-stack socket covers them, since Linux refuses
// a second bind of the same port.
func listenAddrs(global []string, l *config.InetListener) []string {
	addrs := l.Address
	if len(addrs) == 0 {
		addrs = global
	}
	port := strconv.Itoa(l.Port)
	any4, any6 := false, false
	var out []string
	for _, a := range addrs {
		switch a {
		case "*":
			any4 = true
		case "::", "[::]":
			any6 = true
		default:
			out = append(out, net.JoinHostPort(strings.Trim(a, "[]"), port))
		}
	}
	switch {
	case any4 && any6:
		out = append(out, ":"+port)
	case any4:
		out = append(out, "0.0.0.0:"+port)
	case any6:
		out = append(out, "[::]:"+port)
	}
	return out
}

// listenTCP binds every address of a listener; on failure it closes what it
// opened and names the listener's config location.
func listenTCP(global []string, l *config.InetListener) ([]net.Listener, error) {
	return listenTCPAt(listenAddrs(global, l), l)
}

func listenTCPAt(addrs []string, l *config.InetListener) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := netx.ListenTCP(a)
		if err != nil {
			for _, x := range lns {
				x.Close()
			}
			return nil, fmt.Errorf("%s:%d: inet_listener %s: %w", l.File, l.Line, l.Name, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// listenUnix binds a UNIX socket under base_dir with the given mode,
// replacing a stale socket file left by a crash.
func listenUnix(baseDir, path string, mode os.FileMode) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process is listening", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// adminListenAddrs is where the TCP director-admin listener binds. The
// protocol has no authentication (as in Dovecot) and HOST-SET, HOST-FLUSH or
// USER-MOVE reroute mail, so without an address of its own the listener
// takes only the loopback part of `listen` ("*" is 127.0.0.1, "::" is ::1),
// a deliberate difference from Dovecot, which binds it wherever `listen`
// says. It reports whether an explicitly configured address is not loopback.
func adminListenAddrs(global []string, l *config.InetListener) (addrs []string, exposed bool) {
	if len(l.Address) > 0 {
		for _, a := range l.Address {
			ip, err := netip.ParseAddr(strings.Trim(a, "[]"))
			if err != nil || !ip.IsLoopback() {
				exposed = true
			}
		}
		return listenAddrs(global, l), exposed
	}
	port := strconv.Itoa(l.Port)
	for _, a := range global {
		host := ""
		switch a = strings.Trim(a, "[]"); a {
		case "*":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		default:
			if ip, err := netip.ParseAddr(a); err == nil && ip.IsLoopback() {
				host = a
			}
		}
		if hp := net.JoinHostPort(host, port); host != "" && !slices.Contains(addrs, hp) {
			addrs = append(addrs, hp)
		}
	}
	if len(addrs) == 0 {
		addrs = []string{net.JoinHostPort("127.0.0.1", port)}
	}
	return addrs, false
}

// listenUnixAt binds a unix_listener: its path (relative to base_dir), its
// mode (default 0600) and, when set, its owner user and group, as Dovecot
// creates it.
func listenUnixAt(baseDir string, u config.UnixListener) (net.Listener, error) {
	path := u.Path
	if path == "" {
		path = u.Name
	}
	mode := os.FileMode(0o600)
	if u.Mode != "" {
		m, err := strconv.ParseUint(u.Mode, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: unix_listener %s: mode %q: %w", u.File, u.Line, u.Name, u.Mode, err)
		}
		mode = os.FileMode(m)
	}
	uid, gid, err := owner(u.User, u.Group)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: unix_listener %s: %w", u.File, u.Line, u.Name, err)
	}
	ln, err := listenUnix(baseDir, path, mode)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: unix_listener %s: %w", u.File, u.Line, u.Name, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Chown(ln.Addr().String(), uid, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("%s:%d: unix_listener %s: %w", u.File, u.Line, u.Name, err)
		}
	}
	return ln, nil
}

// owner looks up a unix_listener's user and group; -1 leaves one as it is.
func owner(userName, groupName string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			return 0, 0, fmt.Errorf("user %s: %w", userName, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return 0, 0, fmt.Errorf("group %s: %w", groupName, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

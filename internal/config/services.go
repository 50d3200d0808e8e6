package config

import (
	"slices"
	"strings"
)

// Service is one service block (merged with Dovecot's default of the same
// name). File and Line are where the file first named it; 0 for a default.
type Service struct {
	Name          string
	InetListeners []InetListener
	UnixListeners []UnixListener
	ClientLimit   int // client_limit; 0: default_client_limit (see Settings.ConnLimit)
	ProcessLimit  int // process_limit; 0: default_process_limit
	File          string
	Line          int
}

// InetListener is an inet_listener block. Port 0 disables it, as in Dovecot.
type InetListener struct {
	Name    string
	Address []string // empty: use Settings.Listen
	Port    int
	SSL     bool
	HAProxy bool
	File    string
	Line    int
}

// UnixListener is a unix_listener block. Path is the section's label unless
// a path setting overrides it; a relative path is under base_dir.
type UnixListener struct {
	Name  string
	Path  string
	Mode  string // octal, as written; Dovecot's default 0600
	User  string
	Group string
	File  string
	Line  int
}

// defaultServices are the listeners Dovecot 2.3 has without any service
// block, for the services usher provides.
func defaultServices() []Service {
	inet := func(name string, port int, ssl bool) InetListener {
		return InetListener{Name: name, Port: port, SSL: ssl}
	}
	unix := func(path, mode string) UnixListener {
		return UnixListener{Name: path, Path: path, Mode: mode}
	}
	return []Service{
		{Name: "imap-login", InetListeners: []InetListener{inet("imap", 143, false), inet("imaps", 993, true)}},
		{Name: "pop3-login", InetListeners: []InetListener{inet("pop3", 110, false), inet("pop3s", 995, true)}},
		{Name: "managesieve-login", InetListeners: []InetListener{inet("sieve", 4190, false)}},
		// Dovecot's own defaults: one client per lmtp and doveadm process,
		// one director process.
		{Name: "lmtp", UnixListeners: []UnixListener{unix("lmtp", "0666")}, ClientLimit: 1},
		{Name: "doveadm", UnixListeners: []UnixListener{unix("doveadm-server", "0600")}, ClientLimit: 1},
		{Name: "director", UnixListeners: []UnixListener{unix("director-admin", "0600")}, ProcessLimit: 1},
	}
}

// serviceSettings are settings Dovecot has in every service block. Most
// control Dovecot's process model, which usher does not have, so they are
// accepted and ignored; client_limit and process_limit bound the service's
// connections (Settings.ConnLimit).
const serviceSettings = " protocol type executable user group privileged_group extra_groups chroot " +
	"drop_priv_before_exec process_min_avail process_limit client_limit service_count idle_kill vsz_limit "

func (a *applier) service(n *Node) error {
	if n.Label == "" {
		return errAt(n.File, n.Line, "service section is missing a name")
	}
	svc, ok := a.s.Service(n.Label)
	if !ok {
		a.s.Services = append(a.s.Services, Service{Name: n.Label})
		svc = &a.s.Services[len(a.s.Services)-1]
	}
	if svc.File == "" {
		svc.File, svc.Line = n.File, n.Line
	}
	for _, c := range n.Children {
		var err error
		switch {
		case c.Section && c.Key == "inet_listener":
			err = inetListener(svc, c)
		case c.Section && c.Key == "unix_listener":
			err = unixListener(svc, c)
		case c.Section && c.Key == "fifo_listener":
			// Dovecot's internal plumbing; nothing in usher listens on FIFOs.
			err = checkListenerSettings(c, " path mode user group type ")
		case c.Section:
			err = errAt(c.File, c.Line, "Unknown section in service %s: %s", n.Label, c.Key)
		case c.Key == "client_limit":
			svc.ClientLimit, err = limitValue(c)
		case c.Key == "process_limit":
			svc.ProcessLimit, err = limitValue(c)
		case !strings.Contains(serviceSettings, " "+c.Key+" "):
			err = errAt(c.File, c.Line, "Unknown setting in service %s: %s", n.Label, c.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// haproxyService reports the services whose inet listeners may take a PROXY protocol header
// (haproxy = yes): the ones a load balancer stands in front of. The ring and the admin
// listeners of the director service and usher's metrics are reached directly.
func haproxyService(name string) bool {
	switch name {
	case "imap-login", "pop3-login", "managesieve-login", "lmtp", "doveadm":
		return true
	}
	return false
}

func inetListener(svc *Service, n *Node) error {
	l := InetListener{Name: n.Label}
	i := slices.IndexFunc(svc.InetListeners, func(l InetListener) bool { return l.Name == n.Label })
	if i >= 0 {
		l = svc.InetListeners[i]
	}
	l.File, l.Line = n.File, n.Line
	for _, c := range n.Children {
		if c.Section {
			return errAt(c.File, c.Line, "Unknown section in inet_listener: %s", c.Key)
		}
		var err error
		switch c.Key {
		case "address":
			l.Address, _ = asList(c.Value)
		case "port":
			l.Port, err = parsePort(c.Value)
		case "ssl":
			l.SSL, err = parseBool(c.Value)
		case "haproxy":
			if l.HAProxy, err = parseBool(c.Value); err == nil && l.HAProxy && !haproxyService(svc.Name) {
				// Ignoring it would read the PROXY header as the protocol's first bytes.
				return errAt(c.File, c.Line, "haproxy = yes: the PROXY protocol is not supported in service %s", svc.Name)
			}
		case "reuse_port":
			_, err = parseBool(c.Value) // usher always sets SO_REUSEADDR only
		default:
			return errAt(c.File, c.Line, "Unknown setting in inet_listener: %s", c.Key)
		}
		if err != nil {
			return errAt(c.File, c.Line, "%s: %v", c.Key, err)
		}
	}
	if i >= 0 {
		svc.InetListeners[i] = l
	} else {
		svc.InetListeners = append(svc.InetListeners, l)
	}
	return nil
}

func unixListener(svc *Service, n *Node) error {
	if n.Label == "" {
		return errAt(n.File, n.Line, "unix_listener is missing a path")
	}
	l := UnixListener{Name: n.Label, Path: n.Label, Mode: "0600"}
	i := slices.IndexFunc(svc.UnixListeners, func(l UnixListener) bool { return l.Name == n.Label })
	if i >= 0 {
		l = svc.UnixListeners[i]
	}
	l.File, l.Line = n.File, n.Line
	if err := checkListenerSettings(n, " path mode user group type "); err != nil {
		return err
	}
	for _, c := range n.Children {
		switch c.Key {
		case "path":
			l.Path = c.Value
		case "mode":
			if strings.TrimLeft(c.Value, "01234567") != "" || c.Value == "" || len(c.Value) > 5 {
				return errAt(c.File, c.Line, "mode: Invalid file mode %s (use octal, e.g. 0600)", c.Value)
			}
			l.Mode = c.Value
		case "user":
			l.User = c.Value
		case "group":
			l.Group = c.Value
		}
	}
	if i >= 0 {
		svc.UnixListeners[i] = l
	} else {
		svc.UnixListeners = append(svc.UnixListeners, l)
	}
	return nil
}

// checkListenerSettings rejects sections and settings a listener cannot have.
func checkListenerSettings(n *Node, allowed string) error {
	for _, c := range n.Children {
		if c.Section || !strings.Contains(allowed, " "+c.Key+" ") {
			what := "setting"
			if c.Section {
				what = "section"
			}
			return errAt(c.File, c.Line, "Unknown %s in %s: %s", what, n.Key, c.Key)
		}
	}
	return nil
}

func limitValue(n *Node) (int, error) {
	v, err := asUint(n.Value)
	if err != nil {
		return 0, errAt(n.File, n.Line, "%s: %v", n.Key, err)
	}
	return v, nil
}

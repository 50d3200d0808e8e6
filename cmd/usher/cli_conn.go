package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/usher-mail/usher/internal/cli"
	"github.com/usher-mail/usher/internal/config"
)

// client finds the running usher: --api, else $USHER_API, else the config file's doveadm
// `inet_listener http`. Credentials: flags, else the URL's userinfo, else the config file.
// On failure it reports on stderr and returns the exit status.
func (g *globals) client(stderr io.Writer) (*cli.Client, int) {
	api := g.api
	if api == "" {
		api = os.Getenv("USHER_API")
	}
	var settings *config.Settings
	if api == "" || g.confSet {
		s, _, err := config.Load(g.conf)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v\n(point the CLI at usher with -c FILE, --api URL or USHER_API)\n", err)
			return nil, exConfig
		}
		settings = s
	} else if s, _, err := config.Load(g.conf); err == nil {
		settings = s // only for credentials; an unreadable default file is fine here
	}
	if api == "" {
		var err error
		if api, err = apiFromSettings(settings); err != nil {
			fmt.Fprintf(stderr, "Error: %s: %v\n", g.conf, err)
			return nil, exConfig
		}
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "Error: invalid API URL %q (want http[s]://host:port)\n", api)
		return nil, exUsage
	}
	c := &cli.Client{Password: g.password, APIKey: g.apiKey}
	if u.User != nil && c.Password == "" && c.APIKey == "" {
		c.Password, _ = u.User.Password()
	}
	u.User = nil
	c.URL = u.String()
	if c.Password == "" && c.APIKey == "" && settings != nil {
		c.Password, c.APIKey = settings.DoveadmPassword, settings.DoveadmAPIKey
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		Proxy:               nil, // the API is local; never send its credentials to a proxy
	}
	if g.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	c.HTTP = &http.Client{Transport: tr}
	return c, 0
}

// apiFromSettings builds the API URL from the doveadm service's http listener.
func apiFromSettings(s *config.Settings) (string, error) {
	l, ok := s.Listener("doveadm", "http")
	if !ok || l.Port == 0 {
		return "", fmt.Errorf("service doveadm has no inet_listener http with a port")
	}
	addrs := l.Address
	if len(addrs) == 0 {
		addrs = s.Listen
	}
	host := "127.0.0.1"
	if len(addrs) > 0 {
		switch a := addrs[0]; a {
		case "*", "::", "[::]", "0.0.0.0", "":
		default:
			host = a
		}
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	scheme := "http"
	if l.SSL {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(l.Port)), nil
}

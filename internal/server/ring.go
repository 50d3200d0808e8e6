package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/usher-mail/usher/internal/admin"
	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/ring"
)

// ringReadyWait bounds how long a director of a ring waits at start for a
// leader before it serves from its local copy anyway (a restarted director
// in a minority keeps serving the users it knows; see docs/cluster.md).
const ringReadyWait = 15 * time.Second

// ringPort is the director service's unnamed inet_listener, the ring port.
func ringPort(s *config.Settings) uint16 {
	port := uint16(9090)
	if svc, ok := s.Service("director"); ok {
		for _, l := range svc.InetListeners {
			if l.Name == "" && l.Port > 0 {
				port = uint16(l.Port)
			}
		}
	}
	return port
}

// ringMembers parses director_servers as ip[:port] (port default: the ring
// port). Entries that are not addresses are skipped: Dovecot allowed host
// names there, usher's ring IDs are addresses.
func ringMembers(s *config.Settings) []netip.AddrPort {
	port := ringPort(s)
	var out []netip.AddrPort
	for _, d := range s.DirectorServers {
		if ap, err := netip.ParseAddrPort(d); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		} else if ip, err := netip.ParseAddr(d); err == nil {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), port))
		}
	}
	return out
}

// ringPeers lists the other directors of director_servers; none means a
// ring of one, which runs without a ring port exactly as before rings.
func ringPeers(s *config.Settings, self netip.AddrPort) []string {
	var out []string
	for _, ap := range ringMembers(s) {
		if ap != self {
			out = append(out, ap.String())
		}
	}
	return out
}

// ringTLS builds the ring's TLS settings: ssl_cert/ssl_key as both server
// and client certificate, peers verified against director_ring_ssl_ca
// (default: the system roots).
func ringTLS(s *config.Settings) (*tls.Config, error) {
	if !s.DirectorRingSSL {
		return nil, nil
	}
	if s.SSLCert == "" || s.SSLKey == "" {
		return nil, errors.New("director_ring_ssl = yes needs ssl_cert and ssl_key")
	}
	cert, err := tls.X509KeyPair([]byte(s.SSLCert), []byte(s.SSLKey))
	if err != nil {
		return nil, fmt.Errorf("ssl_cert/ssl_key: %w", err)
	}
	var pool *x509.CertPool
	if s.DirectorRingSSLCA != "" {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.DirectorRingSSLCA)) {
			return nil, errors.New("director_ring_ssl_ca: no PEM certificate found")
		}
	} else if pool, err = x509.SystemCertPool(); err != nil {
		return nil, fmt.Errorf("director_ring_ssl: system roots: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	}, nil
}

// openState opens the replicated state: a ring when director_servers names
// other directors, otherwise a ring of one without a ring port. onKick
// receives committed kicks on this director.
func (srv *Server) openState(self netip.AddrPort, onKick func(cluster.Kick)) (admin.Ring, error) {
	s := srv.settings
	dir := filepath.Join(s.StateDir, "raft")
	peers := ringPeers(s, self)
	if len(peers) == 0 {
		node, err := cluster.Open(cluster.Config{Dir: dir, NodeID: self.String(), Logger: srv.log, OnKick: onKick})
		if err != nil {
			return nil, fmt.Errorf("opening state in %s: %w", s.StateDir, err)
		}
		srv.node = node
		return admin.NewLocalRing(self), nil
	}
	tc, err := ringTLS(s)
	if err != nil {
		return nil, err
	}
	r, err := ring.Open(ring.Config{
		Dir: dir, Self: self.String(), Peers: peers,
		Secret: s.DirectorRingSecret, TLS: tc, Logger: srv.log, OnKick: onKick,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the ring state in %s: %w", s.StateDir, err)
	}
	srv.ring, srv.node = r, r.Node()
	srv.log.Info("director ring", "self", self.String(), "peers", peers, "tls", tc != nil)
	return r, nil
}

// initHosts puts director_mail_servers into the log. A director of a ring
// that finds no leader in time serves from its local copy and keeps
// trying in the background.
func (srv *Server) initHosts(hosts []cluster.Host) error {
	init := func(ctx context.Context) error {
		if err := srv.node.WaitReady(ctx); err != nil {
			return fmt.Errorf("state not ready: %w", err)
		}
		if _, err := srv.node.Apply(ctx, cluster.Command{Op: cluster.OpInitHosts, Hosts: hosts, Now: time.Now().Unix()}); err != nil {
			return fmt.Errorf("initialising hosts: %w", err)
		}
		return nil
	}
	if srv.ring == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return init(ctx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ringReadyWait)
	err := init(ctx)
	cancel()
	if err == nil {
		return nil
	}
	srv.log.Warn("director ring: no leader yet; serving from the local copy", "err", err)
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			select {
			case <-srv.stopping:
				return
			case <-time.After(time.Second):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := init(ctx)
			cancel()
			if err == nil {
				srv.log.Info("director ring: hosts initialised")
				return
			}
		}
	}()
	return nil
}

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// procSet is every process the harness started and has not stopped yet, so an interrupt
// tears them all down.
type procSet struct {
	mu    sync.Mutex
	next  int
	stops map[int]func()
}

func newProcSet() *procSet { return &procSet{stops: map[int]func(){}} }

// track registers stop and returns a stop that also unregisters it.
func (ps *procSet) track(stop func()) func() {
	ps.mu.Lock()
	id := ps.next
	ps.next++
	ps.stops[id] = stop
	ps.mu.Unlock()
	return func() {
		stop()
		ps.mu.Lock()
		delete(ps.stops, id)
		ps.mu.Unlock()
	}
}

func (ps *procSet) stopAll() {
	ps.mu.Lock()
	stops := ps.stops
	ps.stops = map[int]func(){}
	ps.mu.Unlock()
	for _, s := range stops {
		s()
	}
}

// Fixed loopback plan, away from the addresses the tests and the shared anchor use.
var (
	usherIP    = netip.MustParseAddr("127.77.0.1")
	dovecotIP  = netip.MustParseAddr("127.77.0.2")
	haproxyIP  = netip.MustParseAddr("127.77.0.3")
	backendIPs = addrRange("127.77.1.1", 4)
	clientIPs  = addrRange("127.77.9.1", 16)
)

func addrRange(first string, n int) []netip.Addr {
	a := netip.MustParseAddr(first)
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

// env is what every contender is set up from.
type env struct {
	log         *slog.Logger
	dir         string
	backends    []netip.Addr // where every contender sends users; all listen on backendPort
	backendPort int
	backendPIDs []int // the real Dovecot backends' master processes; none for the fake ones
	cert        *benchCert
	usherBin    string
	fdLimit     uint64
	procs       *procSet
	pprofAddr   string   // non-empty: usherBin serves net/http/pprof here (see bench/usherprof)
	cpus        *cpuPlan // nil: everything shares every CPU
}

// instance is one running contender.
type instance struct {
	addr netip.AddrPort
	pid  int // 0 for direct: nothing between client and backend
	stop func()
}

// contender starts fresh for each load so one load's leftovers do not skew the next.
type contender struct {
	name  string
	start func(e *env) (*instance, error)
}

func contenders() []contender {
	return []contender{
		{name: "direct", start: startDirect},
		{name: "usher", start: startUsher},
		{name: "dovecot-director", start: startDovecotDirector},
		{name: "haproxy-tcp", start: startHAProxy},
	}
}

func startDirect(e *env) (*instance, error) {
	return &instance{addr: netip.AddrPortFrom(e.backends[0], uint16(e.backendPort)), stop: func() {}}, nil
}

func freePort(ip netip.Addr) (int, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func backendList(e *env) string {
	var s []string
	for _, ip := range e.backends {
		s = append(s, ip.String())
	}
	return strings.Join(s, " ")
}

func startUsher(e *env) (*instance, error) {
	dir, err := os.MkdirTemp(e.dir, "usher-")
	if err != nil {
		return nil, err
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(usherIP); err != nil {
			return nil, err
		}
	}
	conf := testenv.UsherConf{IP: usherIP, Dir: dir, Protocols: "imap",
		Settings: fmt.Sprintf(`ssl = yes
ssl_cert = <%s
ssl_key = <%s
disable_plaintext_auth = no
mail_max_userip_connections = 1000000
usher_client_limit_per_ip = 0
director_servers = %s:%d
director_mail_servers = %s
backend_imap_port = %d
doveadm_password = benchdoveadm`, e.cert.CertPath, e.cert.KeyPath, usherIP, ports[0], backendList(e), e.backendPort),
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: ports[1]}, {Name: "imaps"}}},
			testenv.Inet("doveadm", "http", ports[2]),
		}}
	path := filepath.Join(dir, "usher.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(e.usherBin, "serve", "-c", path)
	if e.pprofAddr != "" {
		cmd.Env = append(os.Environ(), "USHER_BENCH_PPROF="+e.pprofAddr)
	}
	return launch(e, cmd, dir, netip.AddrPortFrom(usherIP, uint16(ports[1])), syscall.SIGTERM, true)
}

func startHAProxy(e *env) (*instance, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, errSkip{"haproxy is not installed (apt-get install haproxy)"}
	}
	dir, err := os.MkdirTemp(e.dir, "haproxy-")
	if err != nil {
		return nil, err
	}
	port, err := freePort(haproxyIP)
	if err != nil {
		return nil, err
	}
	// Round robin over the same backends: no IMAP awareness at all, only byte moving, and
	// 50,000 sessions need more than one backend address for source ports.
	var servers strings.Builder
	for i, ip := range e.backends {
		fmt.Fprintf(&servers, "  server b%d %s:%d\n", i, ip, e.backendPort)
	}
	conf := fmt.Sprintf(`global
  maxconn %d
  nbthread 2
defaults
  mode tcp
  timeout connect 10s
  timeout client 1h
  timeout server 1h
frontend imap
  bind %s:%d
  default_backend mail
backend mail
  balance roundrobin
%s`, e.fdLimit/2-100, haproxyIP, port, servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return launch(e, exec.Command(bin, "-db", "-f", path), dir, netip.AddrPortFrom(haproxyIP, uint16(port)), syscall.SIGTERM, true)
}

// errSkip marks a contender that cannot run on this machine; the table says why.
type errSkip struct{ why string }

func (e errSkip) Error() string { return e.why }

// launch starts cmd with its output in dir/output.log and waits for an IMAP greeting on addr.
func launch(e *env, cmd *exec.Cmd, dir string, addr netip.AddrPort, stopSig syscall.Signal, contender bool) (*instance, error) {
	if e.cpus != nil {
		set := e.cpus.harness
		if contender {
			set = e.cpus.contender
		}
		cmd = wrap(cmd, set)
	}
	out, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(stopSig)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	stop = e.procs.track(stop)
	if err := waitGreeting(addr, exited, 60*time.Second); err != nil {
		stop()
		logTail, _ := os.ReadFile(filepath.Join(dir, "output.log"))
		return nil, fmt.Errorf("%s: %w\n%s", filepath.Base(cmd.Path), err, tail(string(logTail), 2000))
	}
	return &instance{addr: addr, pid: cmd.Process.Pid, stop: stop}, nil
}

func waitGreeting(addr netip.AddrPort, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		cl, err := dial(target{addr: addr, timeout: 2 * time.Second}, netip.Addr{})
		if err == nil {
			cl.close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited during start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no greeting on %v within %v: %w", addr, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/devbackend"
)

// Dev mode addresses: fixed, so the README can name them.
const (
	devListen      = "127.0.0.1"
	devIMAPPort    = 10143
	devAPIPort     = 10080
	devAdminPort   = 10091
	devBackendPort = 10144
	devPassword    = "hellodoveadm"
	devUserPass    = "pass"
)

var devBackendIPs = []string{"127.0.0.2", "127.0.0.3"}

type devEnv struct {
	settings *config.Settings
	close    func()
}

// startDev starts two demo backends and builds the settings of a director
// in front of them, through the same parser a real config file goes through.
func startDev(log *slog.Logger) (*devEnv, error) {
	dir, err := os.MkdirTemp("", "usher-dev-")
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	for i := 1; i <= 10; i++ {
		users[fmt.Sprintf("user%02d", i)] = devUserPass
	}
	var backends []*devbackend.Backend
	closeAll := func() {
		for _, b := range backends {
			b.Close()
		}
		os.RemoveAll(dir)
	}
	for i, ip := range devBackendIPs {
		b, err := devbackend.Start(net.JoinHostPort(ip, strconv.Itoa(devBackendPort)), fmt.Sprintf("b%d", i+1), users, log)
		if err != nil {
			closeAll()
			return nil, err
		}
		backends = append(backends, b)
	}
	conf := fmt.Sprintf(`# usher -dev: generated
protocols = imap
listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
ssl = no
director_servers = %[1]s:9090
director_mail_servers = %[3]s %[4]s
backend_imap_port = %[5]d
doveadm_password = %[6]s
doveadm_api_key = key
service imap-login {
  inet_listener imap {
    port = %[7]d
  }
  inet_listener imaps {
    port = 0
  }
}
service doveadm {
  inet_listener http {
    port = %[8]d
  }
}
service director {
  unix_listener director-admin {
  }
  inet_listener director-admin {
    port = %[9]d
  }
}
`, devListen, dir, devBackendIPs[0], devBackendIPs[1], devBackendPort, devPassword, devIMAPPort, devAPIPort, devAdminPort)
	path := filepath.Join(dir, "usher.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		closeAll()
		return nil, err
	}
	s, _, err := config.Load(path)
	if err != nil {
		closeAll()
		return nil, err
	}
	return &devEnv{settings: s, close: closeAll}, nil
}

func printDevBanner(w io.Writer, s *config.Settings) {
	fmt.Fprintf(w, `
usher is running in demo mode (state in %s, gone on exit).
  backends:   %s and %s, IMAP port %d (built-in, in memory)
  IMAP:       %s:%d   users user01..user10, password %q
              curl -s 'imap://%s:%d/INBOX;UID=1' --user user01:%s
  doveadm API http://%s:%d/doveadm/v1   (Basic doveadm:%s)
              curl -s -u doveadm:%s http://%s:%d/doveadm/v1 -d '[["directorStatus",{},"t1"]]'
  CLI:        USHER_API=http://doveadm:%[13]s@%[11]s:%[12]d usher director status
  director-admin socket %[17]s:%[18]d, e.g. Debian's: doveadm director status -a %[17]s:%[18]d
Stop with Ctrl-C.
`, s.StateDir, devBackendIPs[0], devBackendIPs[1], devBackendPort,
		devListen, devIMAPPort, devUserPass,
		devListen, devIMAPPort, devUserPass,
		devListen, devAPIPort, devPassword,
		devPassword, devListen, devAPIPort,
		devListen, devAdminPort)
}

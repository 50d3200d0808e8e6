package server

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notify tells the service manager about a state change (sd_notify(3)):
// one datagram to the unix socket named by $NOTIFY_SOCKET, which systemd sets
// for Type=notify units. Without it (not under systemd) it does nothing. A
// name starting with '@' is in the abstract namespace, which Go's unix
// addresses already understand.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// sdReloading is the RELOADING=1 message, with the CLOCK_MONOTONIC time in
// microseconds that systemd wants beside it (it tells reloads apart).
func sdReloading() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}

// oneLine keeps a STATUS= value on its one line of the message.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// notify sends state, logging a failure: a lost notification must not stop
// usher, systemd then times out on its own.
func (srv *Server) notify(state string) {
	if err := Notify(state); err != nil {
		srv.log.Warn("systemd notification", "err", err)
	}
}

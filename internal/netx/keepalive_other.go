//go:build unix && !linux

package netx

import "syscall"

// Elsewhere only keepalive itself is switched on (the system's own timers apply), and whether
// accepted sockets inherit it depends on the system.
func setKeepalive(fd int) error {
	return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
}

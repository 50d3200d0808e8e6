package netx

import "golang.org/x/sys/unix"

func setKeepalive(fd int) error {
	for _, o := range [...]struct{ level, name, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(KeepaliveIdle.Seconds())},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(KeepaliveInterval.Seconds())},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepaliveCount},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.v); err != nil {
			return err
		}
	}
	return nil
}

//go:build !linux

package relay

import (
	"io"
	"net"
)

func spliceConn(dst, src *net.TCPConn) (int64, error) { return io.Copy(dst, src) }

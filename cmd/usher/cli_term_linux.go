package main

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	"github.com/usher-mail/usher/internal/cli"
)

// termColumns is the width the table formatter fits: the terminal's, as doveadm asks the
// kernel (TIOCGWINSZ on stdout), else 80.
func termColumns(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return cli.DefaultColumns
	}
	var ws struct{ Row, Col, X, Y uint16 }
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ,
		uintptr(unsafe.Pointer(&ws))); errno != 0 {
		return cli.DefaultColumns
	}
	return max(int(ws.Col), cli.MinColumns)
}

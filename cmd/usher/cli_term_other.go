//go:build !linux

package main

import (
	"io"

	"github.com/usher-mail/usher/internal/cli"
)

// termColumns: without a portable terminal size query, doveadm's default width.
func termColumns(io.Writer) int { return cli.DefaultColumns }

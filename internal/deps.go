//go:build tools

// Package internal pins modules that several packages will use, so that
// concurrent work does not race on go.mod.
package internal

import (
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.etcd.io/bbolt"
)

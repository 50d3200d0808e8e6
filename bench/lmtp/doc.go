// Package lmtpbench measures LMTP delivery through usher against delivery straight to Dovecot
// 2.3 on the same machine: messages per second for 100 KB messages with 1 and 10 recipients.
// It is a Go benchmark (the backends come from internal/testenv, which needs a testing.TB):
//
//	go test -run=NONE -bench=. -benchtime=5s ./bench/lmtp/
//
// Results and their reading are in docs/benchmarks-lmtp.md.
package lmtpbench

// Package api benchmarks the doveadm HTTP API: requests per second for
// directorStatus and for who with many sessions. The benchmarks live in
// api_test.go; results and how to reproduce them are in
// docs/benchmarks-api.md.
package api

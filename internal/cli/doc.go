// Package cli renders doveadm command output the way Dovecot 2.3.19's doveadm prints it on a
// terminal (formatters table, tab, flow, json and formatted), parses doveadm HTTP API
// responses keeping the order of keys, and is a small client of that API.
//
// The layouts are byte-compatible with 2.3.19's CLI, including its quirks: the table
// formatter sizes columns from the first 100 rows only, may shrink columns below their
// values' width when the line is longer than the terminal (values then overflow, they are
// never cut), and widens one column by half of the remaining width.
package cli

package stats

import (
	"fmt"
	"strconv"
)

// Stats columns that follow the leading ones in every old-stats level, in
// the order Dovecot 2.3 loads its old-stats modules (mail, then auth).
// usher has no mail processes, so the mail columns are always zero.
var (
	mailColumns = []string{"user_cpu", "sys_cpu", "clock_time", "min_faults", "maj_faults",
		"vol_cs", "invol_cs", "disk_input", "disk_output", "read_count", "read_bytes",
		"write_count", "write_bytes", "mail_lookup_path", "mail_lookup_attr",
		"mail_read_count", "mail_read_bytes", "mail_cache_hits"}
	authColumns = []string{"auth_successes", "auth_master_successes", "auth_failures",
		"auth_db_tempfails", "auth_cache_hits", "auth_cache_misses"}

	leadingColumns = map[string][]string{
		"command": {"cmd", "args", "session", "user", "last_update"},
		"session": {"session", "user", "ip", "service", "pid", "connected", "last_update", "num_cmds"},
		"user":    {"user", "reset_timestamp", "last_update", "num_logins", "num_cmds"},
		"domain":  {"domain", "reset_timestamp", "last_update", "num_logins", "num_cmds", "num_connected_sessions"},
		"ip":      {"ip", "reset_timestamp", "last_update", "num_logins", "num_cmds", "num_connected_sessions"},
		"global":  {"reset_timestamp", "last_update", "num_logins", "num_cmds", "num_connected_sessions"},
	}
)

// The timing columns print as <sec>.<usec> without zero padding (a 2.3
// quirk); zero is "0.0".
var timingColumns = map[string]bool{"user_cpu": true, "sys_cpu": true, "clock_time": true}

// OldStats is the old-stats EXPORT for level: the header and the rows,
// values as strings. Levels are command, session, user, domain, ip and
// global; usher keeps only the global entry (its logins are proxied, so
// there are no per-user mail statistics to export), so the other levels
// have a header and no rows, which doveadm shows as []. An unknown level is
// an error (Dovecot drops the connection).
func (s *Stats) OldStats(level string) (header []string, rows [][]string, err error) {
	lead, ok := leadingColumns[level]
	if !ok {
		return nil, nil, fmt.Errorf("invalid level %q", level)
	}
	header = make([]string, 0, len(lead)+len(mailColumns)+len(authColumns))
	header = append(append(append(header, lead...), mailColumns...), authColumns...)
	if level != "global" {
		return header, nil, nil
	}

	g := s.Global()
	vals := map[string]string{
		"reset_timestamp":        strconv.FormatInt(g.ResetTimestamp.Unix(), 10),
		"last_update":            "0.000000",
		"num_logins":             strconv.FormatUint(g.NumLogins, 10),
		"num_cmds":               strconv.FormatUint(g.NumCmds, 10),
		"num_connected_sessions": strconv.FormatInt(g.NumConnectedSessions, 10),
		"auth_successes":         strconv.FormatUint(g.AuthSuccesses, 10),
		"auth_failures":          strconv.FormatUint(g.AuthFailures, 10),
	}
	if !g.LastUpdate.IsZero() {
		us := g.LastUpdate.UnixMicro()
		vals["last_update"] = fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
	}
	row := make([]string, len(header))
	for i, h := range header {
		switch v, ok := vals[h]; {
		case ok:
			row[i] = v
		case timingColumns[h]:
			row[i] = "0.0"
		default:
			row[i] = "0"
		}
	}
	return header, [][]string{row}, nil
}

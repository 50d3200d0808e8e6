package status

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"
	"time"
)

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ago":   ago,
	"clock": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"lower": strings.ToLower,
}).ParseFS(files, "page.html"))

// Render answers a request with the given Accept header: HTML for a
// browser, plain text for anything else (curl sends */*).
func Render(snap *Snapshot, accept string) (contentType string, body []byte) {
	if wantsHTML(accept) {
		var b bytes.Buffer
		if err := page.Execute(&b, snap); err != nil {
			return "text/plain; charset=utf-8", []byte("status page: " + err.Error() + "\n")
		}
		return "text/html; charset=utf-8", b.Bytes()
	}
	return "text/plain; charset=utf-8", Text(snap)
}

func wantsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		mt = strings.TrimSpace(strings.ToLower(mt))
		if mt == "text/html" || mt == "application/xhtml+xml" {
			return true
		}
	}
	return false
}

// Text is the plain-text page: the same sections, aligned columns.
func Text(snap *Snapshot) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "usher status at %s\n", snap.Time.UTC().Format(time.RFC3339))
	leader := snap.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(&b, "leader %s; %d backends, %d vhosts, %d mapped users, %d sessions of %d users\n",
		leader, len(snap.Backends), snap.Vhosts, snap.MappedUsers, snap.Sessions, snap.SessionUsers)
	for _, e := range snap.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nring\nDIRECTOR\tTYPE\tSTATUS\tPING\tLEADER\n")
	for _, m := range snap.Ring {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Addr, dash(m.Type), dash(m.Status), dash(m.PingMs), yes(m.Leader))
	}
	fmt.Fprintf(tw, "\nbackends\nBACKEND\tTAG\tSTATE\tCAUSE\tCHECKS\tVHOSTS\tUSERS\tSESSIONS\n")
	for _, h := range snap.Backends {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", h.IP, dash(h.Tag), h.State, dash(h.Cause), dash(h.Checks), h.Vhosts, h.Users, h.Sessions)
	}
	fmt.Fprintf(tw, "\nsessions\nPROTOCOL\tSESSIONS\n")
	for _, c := range snap.PerProtocol {
		fmt.Fprintf(tw, "%s\t%d\n", c.Name, c.N)
	}
	fmt.Fprintf(tw, "\nrecent events\nTIME\tKIND\tWHAT\tRESULT\n")
	for _, e := range snap.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.What, e.Result)
	}
	tw.Flush()
	return b.Bytes()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// ago says how long before now t was, coarsely.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

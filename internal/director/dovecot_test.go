package director

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// openFixture opens testdata/name, or its .gz form (gen.sh compresses files over 1 MB).
func openFixture(t *testing.T, name string) io.Reader {
	t.Helper()
	path := "testdata/" + name
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.Open(path + ".gz")
		if err == nil {
			t.Cleanup(func() { f.Close() })
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			return zr
		}
	}
	if err != nil {
		t.Fatalf("fixture missing (run testdata/gen/gen.sh as root): %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// parseHostHeader reads a "#   <doveadm director status row>" header line: ip [tag] vhosts
// state ... It reports false for lines that are not host rows.
func parseHostHeader(line string) (Host, bool) {
	f := strings.Fields(strings.TrimPrefix(line, "#"))
	if len(f) < 3 {
		return Host{}, false
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil {
		return Host{}, false
	}
	h := Host{IP: addr}
	if _, err := strconv.Atoi(f[1]); err != nil {
		h.Tag, f = f[1], f[1:]
	}
	h.VhostCount, err = strconv.Atoi(f[1])
	if err != nil {
		return Host{}, false
	}
	h.Down = f[2] == "down"
	return h, true
}

// TestMatchesDovecot replays the choices of a real Dovecot 2.3.19 director (testdata/gen/gen.sh)
// for 10,000 usernames in two tags plus a tag without hosts.
func TestMatchesDovecot(t *testing.T) {
	sc := bufio.NewScanner(openFixture(t, "dovecot-ring.tsv"))
	var hosts []Host
	var rings *Rings
	rows, tags := 0, map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if h, ok := parseHostHeader(line); ok {
				hosts = append(hosts, h)
			}
			continue
		}
		if rings == nil {
			if len(hosts) == 0 {
				t.Fatal("fixture header lists no hosts")
			}
			rings = NewRings(hosts)
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("bad fixture line %q", line)
		}
		user, tag, wantIP := f[0], f[1], f[3]
		wantHash, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			t.Fatalf("bad hash in %q", line)
		}
		rows++
		tags[tag]++
		h, err := UserHash(DefaultUserHashTemplate, user)
		if err != nil || uint64(h) != wantHash {
			t.Errorf("UserHash(%q) = %d, %v; Dovecot %d", user, h, err, wantHash)
			continue
		}
		got, ok := rings.Lookup(tag, h)
		gotIP := ""
		if ok {
			gotIP = got.String()
		}
		if gotIP != wantIP {
			t.Errorf("user %q tag %q hash %d: usher %q, Dovecot %q", user, tag, h, gotIP, wantIP)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows < 20000 || tags[""] < 10000 || tags["tagB"] < 10000 {
		t.Errorf("fixture too small: %d rows, per tag %v", rows, tags)
	}
	t.Logf("%d rows, hosts %v", rows, hosts)
}

// TestHashTemplatesMatchDovecot replays doveadm's hashes for other director_username_hash
// templates (ERR = doveadm failed to expand).
func TestHashTemplatesMatchDovecot(t *testing.T) {
	sc := bufio.NewScanner(openFixture(t, "dovecot-hash-templates.tsv"))
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("bad line %q", line)
		}
		rows++
		got, err := UserHash(f[0], f[1])
		if f[2] == "ERR" {
			if err == nil {
				t.Errorf("UserHash(%q, %q) = %d; Dovecot fails to expand", f[0], f[1], got)
			}
			continue
		}
		if err != nil || strconv.FormatUint(uint64(got), 10) != f[2] {
			t.Errorf("UserHash(%q, %q) = %d, %v; Dovecot %s", f[0], f[1], got, err, f[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows == 0 {
		t.Error("empty fixture")
	}
}

package ring

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestPoolmonStyleMonitor: with usher_health_check = none an external
// monitor runs the show, as poolmon does on Dovecot directors: it writes
// HOST-DOWN and HOST-FLUSH in one go before reading the replies (as
// brandond/poolmon did), later HOST-UP. usher checks nothing itself.
func TestPoolmonStyleMonitor(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 40})
	b1 := cl.Backends()[0]
	ip1 := b1.IP.String()
	ds := startRingWith(t, cl, 1, "", "usher_health_check = none\n")
	d := ds[0]
	users := cl.Users()
	mapUsers(t, ds, users)

	b1.Kill()
	a := d.dialAdmin(t)
	defer a.c.Close()
	a.c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(a.c, "HOST-DOWN\t"+ip1+"\nHOST-FLUSH\t"+ip1+"\n")
	for _, cmd := range []string{"HOST-DOWN", "HOST-FLUSH"} {
		if l, err := a.r.ReadString('\n'); err != nil || l != "OK\n" {
			t.Fatalf("%s: %q %v", cmd, l, err)
		}
	}
	if r := healthRow(d, ip1); !rowIs(r, "down", "admin") {
		t.Fatalf("after the monitor's HOST-DOWN: %v", r)
	}
	for i, h := range lookupOn(t, d, users) {
		if h == ip1 {
			t.Fatalf("%s still mapped to the flushed backend", users[i])
		}
	}
	// Logins of its users now land on the other backend.
	for _, u := range users[:5] {
		if err := imapLogin(d.Addr(d.IMAPPort), u, 0); err != nil {
			t.Fatalf("login of %s: %v", u, err)
		}
	}
	if err := b1.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(a.c, "HOST-UP\t"+ip1+"\n")
	if l, _ := a.r.ReadString('\n'); l != "OK\n" {
		t.Fatalf("HOST-UP: %q", l)
	}
	if r := healthRow(d, ip1); !rowIs(r, "up", "admin") || r["checks"] != "passing" {
		t.Fatalf("after the monitor's HOST-UP: %v", r)
	}
	// usher itself never checked.
	if n := metric(t, d, "usher_health_checker"); n != 0 {
		t.Errorf("usher_health_checker = %v with usher_health_check = none", n)
	}
	if body := scrape(t, d); strings.Contains(body, "usher_health_checks_total{") {
		t.Errorf("usher ran checks with usher_health_check = none")
	}
}

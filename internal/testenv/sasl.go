package testenv

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Backends for SASL mechanisms a director relays: StartSASLDovecot's backends offer
// XOAUTH2 and OAUTHBEARER, checked by an oauth2 passdb against a loopback introspection
// endpoint of the test's own, and SCRAM-SHA-1 and SCRAM-SHA-256 against stored SCRAM hashes.

// Introspection is a loopback OAuth2 token introspection endpoint (RFC 7662: a form POST of
// "token"): "tok-<user>" is an active token of <user>, also with a dot and anything after
// it (a long token), anything else is inactive. It counts
// the questions, so a test sees that the backend, not the director, checked a token.
type Introspection struct {
	URL string
	mu  sync.Mutex
	n   int
}

// Token is user's valid token at an Introspection.
func Token(user string) string { return "tok-" + user }

// StartIntrospection serves an Introspection on 127.0.0.1 until the test ends.
func StartIntrospection(t testing.TB) *Introspection {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &Introspection{URL: "http://" + ln.Addr().String() + "/introspect"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		in.n++
		in.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		user, ok := strings.CutPrefix(r.FormValue("token"), "tok-")
		user, _, _ = strings.Cut(user, ".") // what follows a dot is padding: a long token
		if !ok || user == "" || strings.ContainsAny(user, "\"\\\x00\r\n") {
			fmt.Fprint(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"username":%q}`, user)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return in
}

// Asked is how many token questions the endpoint has answered.
func (in *Introspection) Asked() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.n
}

// SCRAMUsers: the password of user001 to user010 is stored as a SCRAM-SHA-256 hash, of the
// others as a SCRAM-SHA-1 one (a SCRAM hash serves its own mechanism, and PLAIN).
const SCRAMUsers = 10

// StartSASLDovecot starts opt's backends with an oauth2 passdb asking a new Introspection and
// SCRAM hashes of opt.Password (see SCRAMUsers); auth_mechanisms adds scram-sha-1,
// scram-sha-256, xoauth2 and oauthbearer to plain and login, and a failed login is answered
// at once (auth_failure_delay = 0).
func StartSASLDovecot(t testing.TB, opt Options) (*Cluster, *Introspection) {
	t.Helper()
	RequireDovecot(t)
	opt.setDefaults()
	in := StartIntrospection(t)
	dir, err := os.MkdirTemp("/tmp", "usher-oauth2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "oauth2.conf.ext")
	ext := "introspection_mode = post\nintrospection_url = " + in.URL +
		"\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
	if err := os.WriteFile(conf, []byte(ext), 0o644); err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, s := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
		out, err := exec.Command("doveadm", "pw", "-s", s, "-p", opt.Password).Output()
		if err != nil {
			t.Fatalf("testenv: doveadm pw -s %s: %v", s, err)
		}
		hashes[s] = strings.TrimSpace(string(out))
	}
	opt.StoredPassword = func(user string) string {
		if user <= UserName(SCRAMUsers) {
			return hashes["SCRAM-SHA-256"]
		}
		return hashes["SCRAM-SHA-1"]
	}
	// auth_failure_delay = 0: the tests refuse on purpose, and need not wait for it.
	opt.Config += "auth_failure_delay = 0\nauth_mechanisms = plain login scram-sha-1 scram-sha-256 xoauth2 oauthbearer\n" +
		"passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = " + conf + "\n}\n"
	return StartDovecot(t, opt), in
}

// SCRAM is the client side of one RFC 5802 exchange without channel binding, for tests
// that speak a protocol by hand: First, then Final with the server-first-message, then
// Verify with the server-final-message.
type SCRAM struct {
	h                     func() hash.Hash
	user, password, nonce string
	bare, auth            string
	serverSig             []byte
}

// NewSCRAM starts an exchange for mech (SCRAM-SHA-1 or SCRAM-SHA-256).
func NewSCRAM(mech, user, password string) (*SCRAM, error) {
	s := &SCRAM{user: user, password: password}
	switch mech {
	case "SCRAM-SHA-1":
		s.h = sha1.New
	case "SCRAM-SHA-256":
		s.h = sha256.New
	default:
		return nil, fmt.Errorf("no SCRAM mechanism %q", mech)
	}
	s.nonce = base64.RawStdEncoding.EncodeToString([]byte(rand.Text()))
	return s, nil
}

// First is the client-first-message.
func (s *SCRAM) First() []byte {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.bare = "n=" + name + ",r=" + s.nonce
	return []byte("n,," + s.bare)
}

// Final answers the server-first-message with the client-final-message (the proof).
func (s *SCRAM) Final(serverFirst []byte) ([]byte, error) {
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(kv, "=")
		attrs[k] = v
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	iter, err2 := strconv.Atoi(attrs["i"])
	if err != nil || err2 != nil || !strings.HasPrefix(attrs["r"], s.nonce) {
		return nil, fmt.Errorf("bad server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(s.h, s.password, salt, iter, s.h().Size())
	if err != nil {
		return nil, err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(s.h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	without := "c=biws,r=" + attrs["r"]
	s.auth = s.bare + "," + string(serverFirst) + "," + without
	clientKey := mac(salted, "Client Key")
	h := s.h()
	h.Write(clientKey)
	proof := mac(h.Sum(nil), s.auth)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	s.serverSig = mac(mac(salted, "Server Key"), s.auth)
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Verify checks the server-final-message: the server knew the password too.
func (s *SCRAM) Verify(serverFinal []byte) error {
	if string(serverFinal) != "v="+base64.StdEncoding.EncodeToString(s.serverSig) {
		return errors.New("server signature does not match")
	}
	return nil
}

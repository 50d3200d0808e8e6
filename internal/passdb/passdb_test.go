package passdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

// Hashes made by Dovecot 2.3.19's `doveadm pw`, password "pass" unless the name says otherwise.
var dovecotHashes = []struct{ stored, pass string }{
	{"{SHA256-CRYPT}$5$W2Wz1JCuYmJcCP8O$AmuBRi5AGPObA7WWuzj26mo6f2gSNXCvnty0nMpWeMD", "pass"},
	{"{SHA512-CRYPT}$6$KKCrBh8N0Et8mYW2$n9lin834du3eg7w8H9b6.zludbibhVUdJ0KjGvMmqoYjVbG8R/a3Thl.53QV6hRbD3af/ZWLfgTGWFaKb7IfG.", "pässword long long long long"},
	{"{SHA512-CRYPT}$6$rounds=6000$zgu7AAzTNtfCIntp$ejjj8UNGGKFkWzrZuSJeOYR927phg6Z3.uC1bUieZ6bhXegIdeiNalcm1zhllVZ9DiO5mpzgtme6mBlXGZMh/1", "pass"},
	{"{CRYPT}$5$W2Wz1JCuYmJcCP8O$AmuBRi5AGPObA7WWuzj26mo6f2gSNXCvnty0nMpWeMD", "pass"},
	{"{SSHA256}Al23usEREiprsdWdkNZ1wOubIBlpRejHWdk7aOn5L8OEGudy", "pass"},
	{"{SSHA512}XXHetvy2OTgMDy3mxoZNBEHNaXZSbJvQ4V4XstjRyv0sjnnqA7yk2bBSLy+yKwHyuCXDu/MM6qOCaEyWTySgt3/7QZ0=", "pass"},
	{"{SHA256}10/w7o2juYBrGMh32/KbveULW9jk2tejpyUAD+uC6PE=", "pass"},
	{"{SSHA}lRUy3oca0Hnnu1h3ElemuMy8RnWnKiHf", "pass"},
	{"{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ=", "pass"},
	{"{SHA256.HEX}d74ff0ee8da3b9806b18c877dbf29bbde50b5bd8e4dad7a3a725000feb82e8f1", "pass"},
	{"{PLAIN}pass", "pass"},
	{"{CLEARTEXT}pass", "pass"},
	{"{BLF-CRYPT}$2y$05$sL7HFmxXE.95USV2caF6aOHQ1NcWuMmHGqN8E5YrEvRPEoqoyYQve", "pass"},
	{"{BLF-CRYPT}$2y$08$R0iyWg0TaMuO5VOkOTib8Ozt1JInF2JPpnc2Sy7RGvwDJ0n2ObmGa", "pässword long long long long long long long long long long long long long long x"},
	{"{CRYPT}$2y$05$sL7HFmxXE.95USV2caF6aOHQ1NcWuMmHGqN8E5YrEvRPEoqoyYQve", "pass"},
	{"{MD5-CRYPT}$1$yFtsp4uA$OATW22lsr9CsOESIIgfQb0", "pass"},
	{"{MD5-CRYPT}$1$UlVcx9E7$bRtFRDaqRsWdy/lzIa6Iz.", "pässword long long long long"},
	{"{CRYPT}$1$yFtsp4uA$OATW22lsr9CsOESIIgfQb0", "pass"},
	{"{PBKDF2}$1$F0TlHCjIQO6V7Y5H$5000$3ed396ded5e50916d818b2a97c9279f854859db9", "pass"},
	{"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU", "pass"},
	{"{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$wkQTH1vhwlBp41K6dlHYog$BPydl/qARwQeGyn508o/FZ3dGsV1MswzDRac5FV+6jk", "pass"},
}

func TestDovecotHashes(t *testing.T) {
	for _, h := range dovecotHashes {
		scheme, stored := SplitScheme(h.stored, "CRYPT")
		ok, err := Check(scheme, stored, h.pass)
		if err != nil || !ok {
			t.Errorf("%s: ok=%v err=%v, want match", h.stored, ok, err)
		}
		ok, err = Check(scheme, stored, "x"+h.pass)
		if err != nil || ok {
			t.Errorf("%s with a wrong password: ok=%v err=%v", h.stored, ok, err)
		}
	}
}

// Vectors from the SHA-crypt specification, checked against glibc crypt(3).
func TestShaCryptVectors(t *testing.T) {
	for _, v := range []struct{ setting, pass, want string }{
		{"$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"$5$rounds=10000$saltstringsaltstring", "Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
		{"$6$saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.", "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
		{"$6$rounds=10$roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	} {
		got, ok := shaCrypt(v.pass, v.setting)
		if !ok || got != v.want {
			t.Errorf("shaCrypt(%q, %q) = %q, %v; want %q", v.pass, v.setting, got, ok, v.want)
		}
	}
}

func TestUnknownScheme(t *testing.T) {
	if _, err := Check("CRYPT", "abDES", "pass"); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("DES crypt: err = %v, want ErrUnknownScheme", err)
	}
	if _, err := Check("SCRAM-SHA-256", "x", "pass"); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("SCRAM-SHA-256: err = %v, want ErrUnknownScheme", err)
	}
}

// bcrypt reads only the first 72 bytes of a password, as crypt_blowfish (Dovecot's
// BLF-CRYPT) does; more work than the limits is a temporary error, not a wrong password.
func TestSlowHashLimits(t *testing.T) {
	long := "pässword long long long long long long long long long long long long long long x"
	if ok, err := Check("BLF-CRYPT", "$2y$08$R0iyWg0TaMuO5VOkOTib8Ozt1JInF2JPpnc2Sy7RGvwDJ0n2ObmGa", long[:72]+"other tail"); !ok || err != nil {
		t.Errorf("bcrypt past 72 bytes: ok=%v err=%v, want a match", ok, err)
	}
	for _, c := range []struct{ scheme, stored string }{
		{"BLF-CRYPT", "$2y$17$R0iyWg0TaMuO5VOkOTib8Ozt1JInF2JPpnc2Sy7RGvwDJ0n2ObmGa"},
		{"PBKDF2", "$1$F0TlHCjIQO6V7Y5H$10000001$3ed396ded5e50916d818b2a97c9279f854859db9"},
		{"ARGON2ID", "$argon2id$v=19$m=1048577,t=3,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU"},
		{"ARGON2ID", "$argon2id$v=19$m=65536,t=65,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU"},
	} {
		if ok, err := Check(c.scheme, c.stored, "pass"); ok || !errors.Is(err, ErrTooCostly) {
			t.Errorf("%s %s: ok=%v err=%v, want ErrTooCostly", c.scheme, c.stored, ok, err)
		}
	}
	for _, c := range []struct{ scheme, stored string }{
		{"PBKDF2", "$1$salt$0$3ed3"}, {"PBKDF2", "$1$salt$5000$zz"}, {"PBKDF2", "$2$salt$5000$3ed3"},
		{"ARGON2ID", "$argon2id$v=16$m=65536,t=3,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU"},
		{"ARGON2ID", "$argon2id$v=19$m=65536,t=3,p=0$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU"},
		{"ARGON2ID", "$argon2d$v=19$m=65536,t=3,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU"},
		{"BLF-CRYPT", "$2y$05$short"}, {"MD5-CRYPT", "$1$"},
	} {
		if ok, err := Check(c.scheme, c.stored, "pass"); ok || err != nil {
			t.Errorf("malformed %s %s: ok=%v err=%v, want a plain refusal", c.scheme, c.stored, ok, err)
		}
	}
}

func TestExpand(t *testing.T) {
	v := vars{user: "Bob@Example.COM", service: "imap"}
	for in, want := range map[string]string{
		"%u": "Bob@Example.COM", "%Ln": "bob", "%Lu": "bob@example.com", "%d": "Example.COM",
		"/etc/users.%s": "/etc/users.imap", "%{service}-%{username}": "imap-Bob", "100%%": "100%",
		"%x": "%x", "%": "%", "%L": "%L", "%{nope": "%{nope",
	} {
		if got := expand(in, v); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeUsers(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPasswdFile(t *testing.T) {
	dir := t.TempDir()
	path := writeUsers(t, dir, "users.imap", `# comment
user001:{PLAIN}pass:1000:1000::/home/user001::
user002:pass::::::proxy=y
user003:{SHA256-CRYPT}$5$W2Wz1JCuYmJcCP8O$AmuBRi5AGPObA7WWuzj26mo6f2gSNXCvnty0nMpWeMD
nopw::::::: nopassword=y
empty:
user001:{PLAIN}second-line-ignored
`)
	db, err := New([]config.Passdb{{Driver: "passwd-file", Args: "scheme=PLAIN " + strings.Replace(path, ".imap", ".%s", 1)}}, "%Ln")
	if err != nil || db == nil {
		t.Fatalf("New: %v, %v", db, err)
	}
	for _, c := range []struct {
		user, pass string
		want       bool
	}{
		{"user001", "pass", true}, {"USER001@example.com", "pass", true}, {"user001", "Pass", false},
		{"user001", "second-line-ignored", false}, {"user002", "pass", true}, {"user003", "pass", true},
		{"user003", "nope", false}, {"nopw", "anything", true}, {"empty", "", false}, {"nosuchuser", "pass", false},
	} {
		ok, err := db.Verify("imap", c.user, c.pass)
		if err != nil || ok != c.want {
			t.Errorf("Verify(%q, %q) = %v, %v; want %v", c.user, c.pass, ok, err, c.want)
		}
	}
	if ok, err := db.Verify("pop3", "user001", "pass"); ok || err == nil {
		t.Errorf("missing users.pop3: ok=%v err=%v, want an error", ok, err)
	}
}

func TestPasswdFileReread(t *testing.T) {
	dir := t.TempDir()
	path := writeUsers(t, dir, "users", "bob:{PLAIN}old\n")
	db, err := New([]config.Passdb{{Driver: "passwd-file", Args: path}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.Verify("imap", "bob", "old"); !ok {
		t.Fatal("old password refused")
	}
	writeUsers(t, dir, "users", "bob:{PLAIN}newer-and-longer\n")
	if ok, _ := db.Verify("imap", "bob", "newer-and-longer"); !ok {
		t.Error("edited file not re-read")
	}
}

func TestNew(t *testing.T) {
	if db, err := New(nil, "%u"); db != nil || err != nil {
		t.Errorf("no passdb: %v, %v; want nil, nil", db, err)
	}
	for _, p := range []config.Passdb{
		{Driver: "ldap", Args: "/etc/ldap.conf", File: "u.conf", Line: 7},
		{Driver: "passwd-file", Args: "", File: "u.conf", Line: 7},
		{Driver: "passwd-file", Args: "scheme=DES-CRYPT /x", File: "u.conf", Line: 7},
		{Driver: "passwd-file", Args: "bogus=1 /x", File: "u.conf", Line: 7},
	} {
		if _, err := New([]config.Passdb{p}, ""); err == nil || !strings.HasPrefix(err.Error(), "u.conf:7: ") {
			t.Errorf("New(%+v) err = %v, want one naming u.conf:7", p, err)
		}
	}
	db, err := New([]config.Passdb{{Driver: "static", Args: "password=secret"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.Verify("imap", "anyone", "secret"); !ok {
		t.Error("static password refused")
	}
	if ok, _ := db.Verify("imap", "anyone", "other"); ok {
		t.Error("static: wrong password accepted")
	}
}

func FuzzCheck(f *testing.F) {
	for _, h := range dovecotHashes {
		f.Add(h.stored, h.pass)
	}
	f.Add("{SHA512-CRYPT}$6$rounds=99999999999999999999$x$", "p")
	f.Add("{SSHA256.HEX}zz", "")
	f.Add("{BLF-CRYPT}$2y$04$sL7HFmxXE.95USV2caF6aOHQ1NcWuMmHGqN8E5YrEvRPEoqoyYQve", "pass")
	f.Add("{PBKDF2}$1$F0TlHCjIQO6V7Y5H$50$3ed396ded5e50916d818b2a97c9279f854859db9", "pass")
	f.Add("{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$C67uXoitVEsq4vkCcd/zcQ$+kukPjaE2+9FYIX9rsQehG0wKefh1+rVBeTBBjB0gVU", "pass")
	// Large work factors are slow by design: the fuzzer explores the parsers under low limits.
	bc, pr, am, ap := maxBcryptCost, maxPBKDF2Rounds, maxArgon2MemKiB, maxArgon2Passes
	f.Cleanup(func() { maxBcryptCost, maxPBKDF2Rounds, maxArgon2MemKiB, maxArgon2Passes = bc, pr, am, ap })
	maxBcryptCost, maxPBKDF2Rounds, maxArgon2MemKiB, maxArgon2Passes = 6, 2000, 256, 2
	f.Fuzz(func(t *testing.T, stored, pass string) {
		if strings.Contains(stored, "rounds=") {
			t.Skip("large round counts are slow by design")
		}
		scheme, value := SplitScheme(stored, "PLAIN")
		Check(scheme, value, pass)
	})
}

func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("user001:{PLAIN}pass:1:1::/h::proxy=y nopassword=y\n#c\n\n:x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for u := range parseUsers(data) {
			if u == "" || strings.Contains(u, ":") {
				t.Fatalf("bad user name %q", u)
			}
		}
	})
}

// forward_* extra fields reach the login's fields from the first passdb that accepts (the
// prefix is case-sensitive, as in Dovecot); a static passdb's forward_* args are its fields.
func TestForwardFields(t *testing.T) {
	path := writeUsers(t, t.TempDir(), "users", "bob:{PLAIN}x::::::forward_tenant=acme FORWARD_Plan=gold proxy=y forward_=bad\n")
	db, err := New([]config.Passdb{{Driver: "passwd-file", Args: path}, {Driver: "static", Args: "nopassword=y proxy forward_src=static"}}, "%Ln")
	if err != nil {
		t.Fatal(err)
	}
	// bob's line comes back whole; the login refuses it for its nameless forward_ field
	r, err := db.Authenticate(context.Background(), Request{Service: "imap", User: "Bob@example.com", Pass: "x", Mech: "PLAIN"})
	if got := strings.Join(r.Fields, " "); err != nil || got != "forward_tenant=acme FORWARD_Plan=gold proxy=y forward_=bad" {
		t.Errorf("bob: %q %v", got, err)
	}
	if _, err := ParseFields(r.Fields); err == nil {
		t.Error("bob: forward_=bad accepted")
	}
	r, err = db.Authenticate(context.Background(), Request{Service: "imap", User: "alice", Pass: "any", Mech: "PLAIN"})
	f, perr := ParseFields(r.Fields)
	if err != nil || !r.OK || perr != nil || strings.Join(f.Forward, "|") != "src=static" || !f.Proxy {
		t.Errorf("alice: %+v %v %+v %v", r, err, f, perr)
	}
}

package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// folderDir maps a mailbox name to its Maildir++ directory under the user's mail root
// (INBOX is the root itself, Foo/Bar is .Foo.Bar).
func (b *Backend) folderDir(user, folder string) string {
	root := filepath.Join(b.MailRoot, user)
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return root
	}
	return filepath.Join(root, "."+strings.ReplaceAll(folder, "/", "."))
}

// MaildirCount returns how many messages the user's folder ("INBOX" or e.g. "Sent") holds on
// this backend's disk, in new/ and cur/. A folder that does not exist holds 0.
func (b *Backend) MaildirCount(user, folder string) int {
	dir := b.folderDir(user, folder)
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// AddMessages delivers n messages of about size bytes each into the user's INBOX by writing
// Maildir files directly (tmp/ then rename into new/), owned by the mail uid, as an MDA would.
// Dovecot picks them up at its next sync.
func (b *Backend) AddMessages(user string, n, size int) error {
	return b.AddMessagesTo(user, "INBOX", n, size)
}

// AddMessagesTo is AddMessages for any folder; the folder is created when missing (Dovecot's
// subscriptions are not touched, so LIST shows it but LSUB may not).
func (b *Backend) AddMessagesTo(user, folder string, n, size int) error {
	if b.MailRoot == "" {
		return fmt.Errorf("%s: not set up", b.Name)
	}
	dir := b.folderDir(user, folder)
	for _, d := range []string{filepath.Join(b.MailRoot, user), dir,
		filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		if err := b.mkdirOwned(d); err != nil {
			return err
		}
	}
	for i := range n {
		tag := make([]byte, 6)
		_, _ = rand.Read(tag)
		now := time.Now()
		name := fmt.Sprintf("%d.M%dP%dQ%d_%s.testenv", now.Unix(), now.Nanosecond()/1000, os.Getpid(), i, hex.EncodeToString(tag))
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, message(user, i+1, size, now), 0o600); err != nil {
			return err
		}
		if err := os.Chown(tmp, b.uid, b.gid); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) mkdirOwned(d string) error {
	if err := os.Mkdir(d, 0o700); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	return os.Chown(d, b.uid, b.gid)
}

// message builds an RFC 5322 message of about size bytes (never less than its headers).
func message(user string, seq, size int, now time.Time) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: testenv <testenv@anchor.test>\n")
	fmt.Fprintf(&sb, "To: %s@anchor.test\n", user)
	fmt.Fprintf(&sb, "Subject: testenv message %d\n", seq)
	fmt.Fprintf(&sb, "Date: %s\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&sb, "Message-ID: <%d.%d.%s@testenv.anchor.test>\n", now.UnixNano(), seq, user)
	sb.WriteString("\n")
	const line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\n"
	for sb.Len()+len(line) <= size {
		sb.WriteString(line)
	}
	if rest := size - sb.Len(); rest > 1 {
		sb.WriteString(line[:rest-1] + "\n")
	} else {
		sb.WriteString("\n")
	}
	return []byte(sb.String())
}

package login

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/usher-mail/usher/internal/tabescape"
)

// Forward fields (Dovecot's forward_*): "key=value" pairs a passdb returns as forward_key=value,
// or a trusted proxy in front of us passes on (IMAP ID x-forward-key, XCLIENT FORWARD=), which
// usher hands to the backend the same ways: x-forward-key in IMAP ID, FORWARD= in POP3 XCLIENT,
// XRCPTFORWARD= on an LMTP RCPT. The backend trusts them only from its login_trusted_networks.

// ForwardPassdb is implemented by a Passdb that can return a user's forward fields, without
// the "forward_" prefix.
type ForwardPassdb interface {
	ForwardFields(service, user string) []string
}

// maxForward bounds the forward fields of one login (Dovecot's FORWARD= is effectively
// limited to about 1000 bytes).
const maxForward = 1024

type forwardKey struct{}

// withForward gives ctx the forward fields the passdb returned for the login; a front-end's
// backend dialogue reads them back with PassdbForward.
func withForward(ctx context.Context, fields []string) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	return context.WithValue(ctx, forwardKey{}, fields)
}

// PassdbForward returns the forward fields Login put in ctx.
func PassdbForward(ctx context.Context) []string {
	f, _ := ctx.Value(forwardKey{}).([]string)
	return f
}

// ForwardFields asks the passdb for user's forward fields, if it can tell.
func (e *Env) ForwardFields(service, user string) []string {
	if fp, ok := e.Passdb.(ForwardPassdb); ok {
		return boundForward(fp.ForwardFields(service, user))
	}
	return nil
}

// ForwardFields are what a backend login passes on: the trusted client's fields with the
// passdb's on top (a passdb field replaces the client's field of the same key).
func (c *Conn) ForwardFields(ctx context.Context) []string {
	return MergeForward(c.Forward, PassdbForward(ctx))
}

// MergeForward returns base with over's fields added, an over field replacing base's field
// of the same key; the result is bounded by maxForward bytes.
func MergeForward(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(over))
	for _, f := range base {
		k, _, _ := strings.Cut(f, "=")
		if !hasForwardKey(over, k) {
			out = append(out, f)
		}
	}
	return boundForward(append(out, over...))
}

func hasForwardKey(fields []string, key string) bool {
	for _, f := range fields {
		if k, _, _ := strings.Cut(f, "="); strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// boundForward drops the fields past maxForward bytes.
func boundForward(fields []string) []string {
	n := 0
	for i, f := range fields {
		if n += len(f) + 1; n > maxForward {
			return fields[:i]
		}
	}
	return fields
}

// EncodeForward renders fields as Dovecot sends FORWARD= and XRCPTFORWARD=: base64 of the
// fields joined by TAB, each tab-escaped.
func EncodeForward(fields []string) string {
	return base64.StdEncoding.EncodeToString([]byte(tabescape.Join(fields...)))
}

// DecodeForward reads EncodeForward's form; fields without '=' are dropped.
func DecodeForward(s string) ([]string, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) > 4*maxForward {
		return nil, false
	}
	var out []string
	for _, f := range tabescape.Split(string(raw)) {
		if k, _, ok := strings.Cut(f, "="); ok && k != "" {
			out = append(out, f)
		}
	}
	return boundForward(out), true
}

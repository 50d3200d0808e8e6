package lmtp

import (
	"fmt"
	"strings"
)

// userFor derives, from a recipient address, the user name a Dovecot 2.3 LMTP proxy would look
// up (and its director would hash): the address with any detail removed from the local part
// (everything from the first recipient_delimiter character on, so user+box@d is user@d), then
// expanded with auth_username_format. The router applies director_username_hash to the result.
func userFor(format, delimiters, rcpt string) (string, error) {
	local, domain := splitAddress(rcpt)
	local = unquoteLocal(local)
	if i := strings.IndexAny(local, delimiters); delimiters != "" && i > 0 {
		local = local[:i]
	}
	user := local
	if domain != "" {
		user += "@" + domain
	}
	return expandUser(format, user)
}

// unquoteLocal turns "a b" into a b; Dovecot looks up the unquoted form.
func unquoteLocal(l string) string {
	if len(l) < 2 || l[0] != '"' || l[len(l)-1] != '"' {
		return l
	}
	var b strings.Builder
	esc := false
	for i := 1; i < len(l)-1; i++ {
		if l[i] == '\\' && !esc {
			esc = true
			continue
		}
		esc = false
		b.WriteByte(l[i])
	}
	return b.String()
}

// expandUser is the part of Dovecot's var_expand that user name formats use: %u / %{user},
// %n / %{username} (before the last '@'), %d / %{domain} (after it, "" without one), %%, and
// the case modifiers L (lower) and U (upper), e.g. "%Lu", "%Ln", "%L{user}". Anything else is
// an error, as an unknown variable makes Dovecot's lookup fail.
func expandUser(format, user string) (string, error) {
	n, d := user, ""
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		n, d = user[:i], user[i+1:]
	}
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		ch := format[i]
		if ch != '%' {
			out.WriteByte(ch)
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			out.WriteByte('%')
			continue
		}
		mod := byte(0)
		if i < len(format) && (format[i] == 'L' || format[i] == 'U') {
			mod = format[i]
			i++
		}
		if i >= len(format) {
			return "", fmt.Errorf("auth_username_format %q: incomplete variable", format)
		}
		name := string(format[i])
		if format[i] == '{' {
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("auth_username_format %q: missing '}'", format)
			}
			name = format[i+1 : i+end]
			i += end
		}
		var v string
		switch name {
		case "u", "user":
			v = user
		case "n", "username":
			v = n
		case "d", "domain":
			v = d
		default:
			return "", fmt.Errorf("auth_username_format %q: unknown variable %q", format, name)
		}
		switch mod {
		case 'L':
			v = asciiLower(v)
		case 'U':
			v = strings.ToUpper(v)
		}
		out.WriteString(v)
	}
	return out.String(), nil
}

// asciiLower lower-cases ASCII only, as Dovecot's t_str_lcase does; the director hash of a
// non-ASCII name must not depend on Unicode case tables.
func asciiLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

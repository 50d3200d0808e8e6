// Package sasl reads the user name out of SASL client messages of mechanisms that usher relays
// without taking part in them: a director must know whom a login is for, to route it, while
// the backend checks the token or the proof. Each function reads only what the mechanism's
// RFC says the client sends first, and refuses anything else, so a login that cannot name its
// user is never routed.
package sasl

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed marks a client message that is not what its mechanism defines.
var ErrMalformed = errors.New("sasl: malformed client message")

// Name is whom a login is for: User authenticates; Authz, when set, is the user to act as (a
// master-user login), which is then the user to route.
type Name struct {
	User, Authz string
}

// Routed is the name a director routes on: the user acted as.
func (n Name) Routed() string {
	if n.Authz != "" {
		return n.Authz
	}
	return n.User
}

// XOAUTH2 reads Google's XOAUTH2 initial response: "user=" name ^A "auth=Bearer " token ^A ^A.
func XOAUTH2(ir []byte) (Name, error) {
	s := string(ir)
	body, ok := strings.CutSuffix(s, "\x01\x01")
	if !ok {
		return Name{}, fmt.Errorf("%w: XOAUTH2 not ended by two ^A", ErrMalformed)
	}
	var user string
	var auth bool
	for _, kv := range strings.Split(body, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Name{}, fmt.Errorf("%w: XOAUTH2 pair without '='", ErrMalformed)
		}
		switch k {
		case "user":
			user = v
		case "auth":
			auth = true
		}
	}
	if user == "" || !auth {
		return Name{}, fmt.Errorf("%w: XOAUTH2 without user or auth", ErrMalformed)
	}
	if strings.ContainsAny(user, "\x00\r\n") {
		return Name{}, fmt.Errorf("%w: XOAUTH2 user with NUL or a line break", ErrMalformed)
	}
	return Name{User: user}, nil
}

// OAUTHBEARER reads an RFC 7628 initial client response: a GS2 header whose authzid ("a=")
// names the user, then ^A-separated key=value pairs, one of them auth, ended by ^A ^A. The
// name is required here: without it only the token knows the user, and a director cannot
// route a token.
func OAUTHBEARER(ir []byte) (Name, error) {
	s := string(ir)
	hdr, rest, ok := strings.Cut(s, "\x01")
	if !ok {
		return Name{}, fmt.Errorf("%w: OAUTHBEARER without ^A", ErrMalformed)
	}
	authz, err := gs2Header(hdr)
	if err != nil {
		return Name{}, err
	}
	body, ok := strings.CutSuffix(rest, "\x01\x01") // each pair ends in ^A, and so does the message
	if !ok {
		return Name{}, fmt.Errorf("%w: OAUTHBEARER not ended by two ^A", ErrMalformed)
	}
	auth := false
	for _, kv := range strings.Split(body, "\x01") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return Name{}, fmt.Errorf("%w: OAUTHBEARER pair %q", ErrMalformed, clip(kv))
		}
		auth = auth || k == "auth"
	}
	if !auth {
		return Name{}, fmt.Errorf("%w: OAUTHBEARER without auth", ErrMalformed)
	}
	if authz == "" {
		return Name{}, fmt.Errorf("%w: OAUTHBEARER without a user name (a=) in its GS2 header", ErrMalformed)
	}
	return Name{User: authz}, nil
}

// SCRAM reads an RFC 5802 client-first-message: GS2 header (channel-binding flag, optional
// authzid) then "n=" user "," "r=" nonce. plus says the mechanism is a -PLUS one; otherwise a
// client that demands channel binding ("p=") is refused, as the mechanism cannot give it.
func SCRAM(msg []byte, plus bool) (Name, error) {
	s := string(msg)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return Name{}, fmt.Errorf("%w: SCRAM without a GS2 header", ErrMalformed)
	}
	authzPart, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return Name{}, fmt.Errorf("%w: SCRAM GS2 header not ended", ErrMalformed)
	}
	authz, err := gs2Header(flag + "," + authzPart + ",")
	if err != nil {
		return Name{}, err
	}
	if strings.HasPrefix(flag, "p=") != plus {
		return Name{}, fmt.Errorf("%w: SCRAM channel binding flag %q for this mechanism", ErrMalformed, clip(flag))
	}
	f := strings.Split(bare, ",")
	if len(f) > 0 && strings.HasPrefix(f[0], "m=") {
		return Name{}, fmt.Errorf("%w: SCRAM mandatory extension", ErrMalformed)
	}
	if len(f) < 2 || !strings.HasPrefix(f[0], "n=") || !strings.HasPrefix(f[1], "r=") || len(f[1]) == 2 {
		return Name{}, fmt.Errorf("%w: SCRAM wants n=user,r=nonce", ErrMalformed)
	}
	user, err := saslname(f[0][2:])
	if err != nil {
		return Name{}, err
	}
	return Name{User: user, Authz: authz}, nil
}

// gs2Header checks an RFC 5801 GS2 header ("n,", "y,", "p=cb," then "[a=authzid]," ) and
// returns the decoded authzid.
func gs2Header(h string) (string, error) {
	flag, rest, _ := strings.Cut(h, ",")
	switch {
	case flag == "n", flag == "y":
	case strings.HasPrefix(flag, "p=") && len(flag) > 2:
	default:
		return "", fmt.Errorf("%w: GS2 channel binding flag %q", ErrMalformed, clip(flag))
	}
	authz, tail, ok := strings.Cut(rest, ",")
	if !ok || tail != "" {
		return "", fmt.Errorf("%w: GS2 header", ErrMalformed)
	}
	if authz == "" {
		return "", nil
	}
	if !strings.HasPrefix(authz, "a=") {
		return "", fmt.Errorf("%w: GS2 authzid %q", ErrMalformed, clip(authz))
	}
	return saslname(authz[2:])
}

// saslname decodes RFC 5801's saslname: "=2C" is ',' and "=3D" is '='; any other '=' and an
// empty name are errors, and so are NUL and line breaks, which no user name holds.
func saslname(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "\x00\r\n") {
		return "", fmt.Errorf("%w: empty or invalid saslname", ErrMalformed)
	}
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: '=' not followed by 2C or 3D", ErrMalformed)
		}
		i += 2
	}
	return b.String(), nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

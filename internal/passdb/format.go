package passdb

import "strings"

// vars are the values Dovecot's %-variables expand to in auth_username_format and in
// passwd-file paths.
type vars struct {
	user, service string
}

// expand replaces %u (user), %n (user part), %d (domain), %s (service), %% and their long
// forms %{user} %{username} %{domain} %{service}; the modifiers L and U lower- or upper-case
// the value (%Ln). Unknown variables are kept as written, so a typo stays visible.
func expand(format string, v vars) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		var mod byte
		if format[j] == 'L' || format[j] == 'U' {
			mod = format[j]
			j++
		}
		if j >= len(format) {
			b.WriteString(format[i:])
			break
		}
		var name string
		end := j + 1
		if format[j] == '{' {
			close := strings.IndexByte(format[j:], '}')
			if close < 0 {
				b.WriteString(format[i:])
				break
			}
			name, end = format[j+1:j+close], j+close+1
		} else {
			name = format[j : j+1]
		}
		val, ok := lookupVar(name, v)
		if !ok {
			b.WriteString(format[i:end])
			i = end - 1
			continue
		}
		switch mod {
		case 'L':
			val = strings.ToLower(val)
		case 'U':
			val = strings.ToUpper(val)
		}
		b.WriteString(val)
		i = end - 1
	}
	return b.String()
}

func lookupVar(name string, v vars) (string, bool) {
	switch name {
	case "%":
		return "%", true
	case "u", "user":
		return v.user, true
	case "n", "username":
		n, _, _ := strings.Cut(v.user, "@")
		return n, true
	case "d", "domain":
		_, d, _ := strings.Cut(v.user, "@")
		return d, true
	case "s", "service":
		return v.service, true
	}
	return "", false
}

package cli

import (
	"encoding/json"
	"strings"
)

// isNumber reports whether s is one JSON number, so that it may be written unquoted.
func isNumber(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return false
	}
	var n json.Number
	if json.Unmarshal([]byte(s), &n) != nil {
		return false
	}
	return n.String() == s
}

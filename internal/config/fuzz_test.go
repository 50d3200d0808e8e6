package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input panics or hangs, and that every rejection
// is an *Error naming where it happened. Includes find no files.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.conf")
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"a = $a $a\n",
		"k = \"x\\\" # y\" # z\nl = 'q\n",
		"s {\n t x {\n  u = 1 \\\n  2\n }\n}\n",
		"!include_try *.conf\n!include x\n",
		"ssl_cert = <cert.pem\n",
		"}\n",
		"service imap-login {\n inet_listener imap {\n  port = 99999\n }\n}\n",
		"director_user_expire = 1w\nimap_max_line_length = 64k\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := Parse("fuzz.conf", data, nil)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File == "" {
				t.Fatalf("error %v (%T) is not an *Error with a file", err, err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil settings without an error")
		}
	})
}

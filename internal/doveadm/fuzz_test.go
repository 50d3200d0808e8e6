package doveadm

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzRequest feeds arbitrary bodies to the request decoder and executor: no panic, no
// hang, and every 200 answer is valid JSON.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`[]`, `[["who",{},"t"]]`, `[["who",{"mask":["a",5]},"t"]]`, `[["who",{"mask":"a","mask":"b"},"t"]]`,
		`[["nosuch",{"a":[1,{"b":null}]},"t"],["penalty",{"netmask":"10.0.0.0/8"},"u"]]`,
		`[["directorFlush",{"host":"all","maxParallel":"-5"},"t"]]`, `[["who",{"separateConnections":{}},"t"]]`,
		`[["statsDump",{"fields":"%95 stddev"},"t"]]`, `{"a":1}`, `"\ud83d\ude00"`, `[1e5, -0.5]`, "\xef\xbb\xbf[]",
		`[["who",{},"t"]] x`, `[["kick",{"mask":[]},"\u0001"]]`,
	} {
		f.Add([]byte(s))
	}
	fs := newFakeServices()
	fs.sessions = []Conn{{User: "u", Service: "imap", IP: "127.0.0.1", Pid: 1}}
	s := NewServer(goldenConfig(), fs)
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := s.Exec(context.Background(), body)
		switch status {
		case 200:
			if !json.Valid(out) {
				t.Fatalf("invalid JSON for %q: %q", body, out)
			}
		case 400:
		default:
			t.Fatalf("status %d", status)
		}
	})
}

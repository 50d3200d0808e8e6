package doveadm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// deadlineConn is the connection readRequest sets read deadlines on; the fuzzer's bytes come
// from a reader, so deadlines do nothing.
type deadlineConn struct{ net.Conn }

func (deadlineConn) SetReadDeadline(time.Time) error { return nil }

// FuzzReadRequest feeds arbitrary bytes to the hand-written HTTP/1.x request parser: it must
// never panic, and whatever it accepts stays within the limits (method a token, a path,
// header count and size, body size) and carries exactly the body the framing announced.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]",
		"POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;ext\r\n[]\r\n0\r\nT: v\r\n\r\n",
		"GET http://h/doveadm/v1?x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"\r\n\r\nGET * HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		req, err := readRequest(bufio.NewReader(bytes.NewReader(in)), bufio.NewWriter(&out), deadlineConn{}, time.Second)
		if err != nil {
			return
		}
		if req.method == "" || strings.ContainsAny(req.method, " \t\r\n") {
			t.Fatalf("accepted method %q", req.method)
		}
		if req.path != "*" && !strings.HasPrefix(req.path, "/") {
			t.Fatalf("accepted path %q", req.path)
		}
		if len(req.headers) > maxHeaders || len(req.body) > maxPayload {
			t.Fatalf("limits passed: %d headers, %d body bytes", len(req.headers), len(req.body))
		}
		if len(req.body) > len(in) {
			t.Fatalf("a body of %d bytes from %d bytes of input", len(req.body), len(in))
		}
		for _, h := range req.headers {
			if h[0] == "" || strings.ContainsAny(h[0], " \t\r\n:") || strings.ContainsAny(h[1], "\r\n") {
				t.Fatalf("accepted header %q", h)
			}
		}
		if _, chunked := req.header("Transfer-Encoding"); !chunked {
			if cl, ok := req.header("Content-Length"); ok {
				if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n != int64(len(req.body)) {
					t.Fatalf("Content-Length %q but a body of %d bytes", cl, len(req.body))
				}
			}
		}
	})
}

// FuzzAdminArgs feeds API parameters that reach the director-admin protocol:
// whatever a string holds, each command sends only the verbs it may send,
// every line is one line, and a read-only command changes nothing. Hosts
// stay IP literals (the tag is a parameter of its own) so nothing is looked
// up in DNS.
func FuzzAdminArgs(f *testing.F) {
	f.Add(uint8(0), "user01\nHOST-SET\t10.77.77.77\t3", "", "")
	f.Add(uint8(1), "u", "t\tx", "HOST-SET")
	f.Add(uint8(2), "u\r\n", "tag\n", "\x01")
	verbs := []struct {
		cmd   string
		verbs string
	}{
		{"directorStatus", "USER-LOOKUP HOST-LIST"},
		{"directorAdd", "HOST-SET"},
		{"directorKick", "USER-KICK USER-KICK-ALT"},
		{"directorMove", "USER-MOVE"},
		{"directorMap", "USER-LIST HOST-LIST"},
		{"directorUpdate", "HOST-UPDATE"},
	}
	f.Fuzz(func(t *testing.T, which uint8, user, tag, field string) {
		v := verbs[int(which)%len(verbs)]
		fs := newFakeServices()
		s := NewServer(goldenConfig(), fs)
		params := map[string]string{"user": user, "tag": tag, "host": "127.0.0.11", "vhostCount": "5"}
		if field != "" {
			params["passdbField"] = field
		}
		body, _ := json.Marshal([]any{[]any{v.cmd, params, "t"}})
		// 400: a string the JSON lexer refuses (\u0000), as Dovecot's does.
		if status, out := s.Exec(context.Background(), body); status != 400 && (status != 200 || !json.Valid(out)) {
			t.Fatalf("status %d %q", status, out)
		}
		for _, l := range fs.dir.lines() {
			verb, _, _ := strings.Cut(l, "\t")
			if !slices.Contains(strings.Fields(v.verbs), verb) || strings.ContainsAny(l, "\r\x00") {
				t.Fatalf("%s sent %q", v.cmd, l)
			}
		}
		if n := len(fs.dir.lines()); n > 1 {
			t.Fatalf("%s sent %d lines: %q", v.cmd, n, fs.dir.lines())
		}
	})
}

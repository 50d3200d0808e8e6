package doveadm

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	maxPayload    = 1 << 20 // lib-http's default max payload: 1 MiB
	maxTarget     = 8 << 10 // request target limit
	maxHeaderSize = 64 << 10
	maxHeaders    = 100
)

// httpError is a request the HTTP layer rejects before routing; the connection closes after.
type httpError struct {
	status int
	reason string
}

func (e *httpError) Error() string { return e.reason }

var (
	errBadRequest  = &httpError{400, "Bad Request"}
	errTooLarge    = &httpError{413, "Payload Too Large"}
	errURITooLong  = &httpError{414, "URI Too Long"}
	errHeadersSize = &httpError{431, "Request Header Fields Too Large"}
	errNotImpl     = &httpError{501, "Not Implemented"}
)

type request struct {
	method, target, path, version string
	headers                       [][2]string
	body                          []byte
	keepAlive                     bool
}

func (r *request) header(name string) (string, bool) {
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			return h[1], true
		}
	}
	return "", false
}

type response struct {
	status  int
	reason  string
	headers [][2]string
	body    []byte
	noBody  bool // HEAD: no Content-Length, no body
	close   bool
}

func (s *Server) serveConn(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 16<<10)
	bw := bufio.NewWriter(nc)
	rip := remoteIP(nc)
	for {
		cfg := s.config()
		if !s.setIdle(nc) {
			return
		}
		nc.SetReadDeadline(time.Now().Add(cfg.idle()))
		_, err := br.Peek(1)
		var req *request
		if err == nil {
			nc.SetReadDeadline(time.Now().Add(cfg.headerTimeout()))
			req, err = readRequest(br, bw, nc, cfg.idle())
		}
		if !s.setBusy(nc) {
			return // closed to make room for a newer connection
		}
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				resp := textResponse(he.status, he.reason, he.reason)
				resp.close = true
				s.writeResponse(bw, resp, "HTTP/1.1")
				bw.Flush()
				lingerClose(nc, br)
			}
			return
		}
		resp, after := s.handle(req)
		if !req.keepAlive || s.closing() {
			resp.close = true
		}
		nc.SetWriteDeadline(time.Now().Add(cfg.idle()))
		s.writeResponse(bw, resp, req.version)
		werr := bw.Flush()
		cfg.logger().Info("doveadm: "+rip+` - - "`+req.method+" "+req.target+" "+req.version+`" `+
			strconv.Itoa(resp.status)+" "+strconv.Itoa(len(resp.body)), "remote", rip)
		for _, f := range after {
			f()
		}
		if werr != nil || resp.close {
			return
		}
	}
}

// lingerClose reads what the client is still sending for a bounded time so that closing
// does not reset the connection before the client has read the error response.
func lingerClose(nc net.Conn, br *bufio.Reader) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.CopyN(io.Discard, br, 8<<20)
}

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return nc.RemoteAddr().String()
}

// readLine reads one CRLF- (or LF-) terminated line of at most limit bytes.
func readLine(br *bufio.Reader, limit int, tooLong error) (string, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > limit {
			return "", tooLong
		}
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if len(line) > 0 && err == io.EOF {
				return "", errBadRequest
			}
			return "", err
		}
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return string(line), nil
}

func readRequest(br *bufio.Reader, bw *bufio.Writer, nc net.Conn, idle time.Duration) (*request, error) {
	var line string
	var err error
	for i := 0; ; i++ {
		if line, err = readLine(br, maxTarget+64, errURITooLong); err != nil {
			return nil, err
		}
		if line != "" || i >= 2 { // a few stray CRLFs before a request are tolerated
			break
		}
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, errBadRequest
	}
	req := &request{method: parts[0], target: parts[1], version: parts[2]}
	for _, c := range req.method {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return nil, errBadRequest
		}
	}
	if len(req.target) > maxTarget {
		return nil, errURITooLong
	}
	switch req.version {
	case "HTTP/1.1":
		req.keepAlive = true
	case "HTTP/1.0":
	default:
		return nil, errBadRequest
	}
	req.path, _, _ = strings.Cut(req.target, "?")
	if req.target != "*" && !strings.HasPrefix(req.target, "/") {
		// absolute-form: keep only the path
		if i := strings.Index(req.target, "://"); i > 0 {
			rest := req.target[i+3:]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				req.path, _, _ = strings.Cut(rest[j:], "?")
			} else {
				req.path = "/"
			}
		} else {
			return nil, errBadRequest
		}
	}
	total := 0
	for {
		h, err := readLine(br, maxHeaderSize, errHeadersSize)
		if err != nil {
			return nil, err
		}
		if h == "" {
			break
		}
		total += len(h)
		if total > maxHeaderSize || len(req.headers) >= maxHeaders {
			return nil, errHeadersSize
		}
		if h[0] == ' ' || h[0] == '\t' {
			return nil, errBadRequest // obsolete line folding
		}
		if strings.ContainsAny(h, "\r\x00") {
			return nil, errBadRequest // a bare CR or a NUL in a field (RFC 9112, section 2.2)
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, errBadRequest
		}
		req.headers = append(req.headers, [2]string{name, strings.Trim(value, " \t")})
	}
	if _, ok := req.header("Host"); !ok && req.version == "HTTP/1.1" {
		return nil, errBadRequest
	}
	if c, ok := req.header("Connection"); ok {
		for _, tok := range strings.Split(c, ",") {
			switch strings.ToLower(strings.TrimSpace(tok)) {
			case "close":
				req.keepAlive = false
			case "keep-alive":
				if req.version == "HTTP/1.0" {
					req.keepAlive = true
				}
			}
		}
	}
	return req, readBody(req, br, bw, nc, idle)
}

func readBody(req *request, br *bufio.Reader, bw *bufio.Writer, nc net.Conn, idle time.Duration) error {
	te, chunked := req.header("Transfer-Encoding")
	var length int64 = -1
	var lengths []string
	for _, h := range req.headers {
		if strings.EqualFold(h[0], "Content-Length") {
			lengths = append(lengths, h[1])
		}
	}
	if chunked {
		if !strings.EqualFold(strings.TrimSpace(te), "chunked") {
			return errNotImpl
		}
	} else if len(lengths) > 0 {
		for _, l := range lengths {
			n, err := strconv.ParseInt(l, 10, 64)
			if err != nil || n < 0 || (length >= 0 && n != length) || strings.HasPrefix(l, "+") {
				return errBadRequest
			}
			length = n
		}
		if length > maxPayload {
			return errTooLarge
		}
	}
	if !chunked && length <= 0 {
		return nil
	}
	if e, ok := req.header("Expect"); ok && strings.EqualFold(e, "100-continue") && req.version == "HTTP/1.1" {
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	nc.SetReadDeadline(time.Now().Add(idle))
	if !chunked {
		req.body = make([]byte, length)
		if _, err := io.ReadFull(br, req.body); err != nil {
			return err
		}
		return nil
	}
	var body []byte
	for {
		line, err := readLine(br, 4096, errBadRequest)
		if err != nil {
			return err
		}
		sz, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(strings.TrimSpace(sz), 16, 63)
		if err != nil {
			return errBadRequest
		}
		if n == 0 {
			break
		}
		if uint64(len(body))+n > maxPayload {
			return errTooLarge
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return err
		}
		body = append(body, chunk...)
		if crlf, err := readLine(br, 2, errBadRequest); err != nil || crlf != "" {
			return errBadRequest
		}
	}
	for { // trailers
		t, err := readLine(br, maxHeaderSize, errHeadersSize)
		if err != nil {
			return err
		}
		if t == "" {
			break
		}
	}
	req.body = body
	return nil
}

func textResponse(status int, reason, text string) *response {
	return &response{status: status, reason: reason,
		headers: [][2]string{{"Content-Type", "text/plain; charset=utf-8"}},
		body:    []byte(text + "\r\n")}
}

func jsonResponse(body []byte) *response {
	return &response{status: 200, reason: "OK",
		headers: [][2]string{{"Content-Type", "application/json; charset=utf-8"}}, body: body}
}

// writeResponse emits the status line and headers in lib-http's order: Date,
// Content-Length, Connection, then the added headers.
func (s *Server) writeResponse(bw *bufio.Writer, r *response, version string) {
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(r.status) + " " + r.reason + "\r\n")
	bw.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	if !r.noBody {
		bw.WriteString("Content-Length: " + strconv.Itoa(len(r.body)) + "\r\n")
	}
	if r.close {
		bw.WriteString("Connection: close\r\n")
	} else if version == "HTTP/1.0" {
		bw.WriteString("Connection: Keep-Alive\r\n")
	} else {
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if !r.noBody {
		for _, h := range r.headers {
			bw.WriteString(h[0] + ": " + h[1] + "\r\n")
		}
	}
	bw.WriteString("\r\n")
	if !r.noBody {
		bw.Write(r.body)
	}
}

const mountList = "[\n" +
	`{"method":"OPTIONS","path":"*"},` + "\n" +
	`{"method":"GET","path":"/"},` + "\n" +
	`{"method":"GET","path":"/doveadm/v1"},` + "\n" +
	`{"method":"POST","path":"/doveadm/v1"}` + "\n]"

// handle routes one request (reference 1.2): OPTIONS anywhere without auth, then the three
// mounts with auth, everything else 404 before any auth check.
func (s *Server) handle(req *request) (*response, []func()) {
	cfg := s.config()
	if req.method == "OPTIONS" {
		return &response{status: 200, reason: "OK", headers: [][2]string{
			{"Access-Control-Allow-Origin", "*"},
			{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
			{"Access-Control-Allow-Request-Headers", "Content-Type, X-API-Key, Authorization"},
			{"Access-Control-Allow-Headers", "Content-Type, WWW-Authenticate"},
		}}, nil
	}
	route := ""
	switch {
	case req.method == "GET" && req.path == "/":
		route = "mounts"
	case req.method == "GET" && req.path == "/doveadm/v1":
		route = "api"
	case req.method == "POST" && req.path == "/doveadm/v1":
		route = "exec"
	case req.method == "GET" && s.page(req.path) != nil:
		route = "page"
	}
	if route == "" {
		r := textResponse(404, "Path Not Found", "Path Not Found")
		r.noBody = req.method == "HEAD"
		return r, nil
	}
	if resp := s.authorize(cfg, req); resp != nil {
		return resp, nil
	}
	switch route {
	case "mounts":
		return jsonResponse([]byte(mountList)), nil
	case "api":
		return jsonResponse(s.api), nil
	case "page":
		return pageResponse(s.base, s.page(req.path), req), nil
	}
	status, out, after := s.execBody(s.base, cfg, req.body)
	switch status {
	case 200:
		return jsonResponse(out), after
	case 400:
		return textResponse(400, "Bad Request", string(out)), after
	}
	return textResponse(500, "Internal server error", "Internal server error"), after
}

// authorize returns nil if the request may proceed, else the response (reference 1.3).
func (s *Server) authorize(cfg *Config, req *request) *response {
	if cfg.Password == "" && cfg.APIKey == "" {
		cfg.logger().Error("No authentication defined in configuration. Add API key or password")
		return textResponse(500, "Internal Server Error", "Internal Server Error")
	}
	if authOK(cfg, req) {
		return nil
	}
	r := &response{status: 401, reason: "Authentication required"}
	if cfg.APIKey != "" {
		r.headers = append(r.headers, [2]string{"WWW-Authenticate", "X-Dovecot-API"})
	}
	if cfg.Password != "" {
		r.headers = append(r.headers, [2]string{"WWW-Authenticate", `Basic Realm="doveadm"`})
	}
	return r
}

func authOK(cfg *Config, req *request) bool {
	h, ok := req.header("Authorization")
	if !ok {
		return false
	}
	scheme, cred, _ := strings.Cut(strings.TrimLeft(h, " "), " ")
	cred = strings.TrimLeft(cred, " ")
	if scheme == "" || cred == "" || strings.ContainsAny(cred, " \t") {
		return false
	}
	var want string
	switch {
	case strings.EqualFold(scheme, "Basic") && cfg.Password != "":
		want = base64.StdEncoding.EncodeToString([]byte("doveadm:" + cfg.Password))
	case strings.EqualFold(scheme, "X-Dovecot-API") && cfg.APIKey != "":
		want = base64.StdEncoding.EncodeToString([]byte(cfg.APIKey))
	default:
		cfg.logger().Info("Unsupported authentication scheme or credentials not configured")
		return false
	}
	return subtle.ConstantTimeCompare([]byte(cred), []byte(want)) == 1
}

package doveadm

import "context"

// Page answers GET of a path mounted beside the API (usher's status page),
// behind the API's own authentication. accept is the request's Accept
// header; the page picks its content type from it.
type Page func(ctx context.Context, accept string) (contentType string, body []byte)

// Mount serves page at path (e.g. "/status"). Call it before Serve.
func (s *Server) Mount(path string, page Page) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pages == nil {
		s.pages = map[string]Page{}
	}
	s.pages[path] = page
}

func (s *Server) page(path string) Page {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages[path]
}

func pageResponse(ctx context.Context, page Page, req *request) *response {
	accept, _ := req.header("Accept")
	ctype, body := page(ctx, accept)
	return &response{status: 200, reason: "OK", headers: [][2]string{
		{"Content-Type", ctype},
		{"Cache-Control", "no-store"},
		{"X-Frame-Options", "DENY"},
		{"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"},
	}, body: body}
}

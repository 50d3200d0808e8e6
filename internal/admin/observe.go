package admin

import "github.com/usher-mail/usher/internal/tabescape"

// Observer sees every command the server ran (fields unescaped) and the
// first line of its reply; the status page keeps the changes as events.
type Observer func(fields []string, reply string)

// Observe sets the observer (nil: none).
func (s *Server) Observe(fn Observer) { s.observer.Store(&fn) }

func (s *Server) observe(line string, reply []string) {
	fn := s.observer.Load()
	if fn == nil {
		return
	}
	first := ""
	if len(reply) > 0 {
		first = reply[0]
	}
	(*fn)(tabescape.Split(line), first)
}

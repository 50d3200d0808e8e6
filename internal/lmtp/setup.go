package lmtp

import "github.com/usher-mail/usher/internal/config"

// Setup is the LMTP front-end's Config from the settings; the connection ceilings (Limiter)
// are set by the caller.
func Setup(s *config.Settings) Config {
	return Config{
		Greeting:       s.LoginGreeting,
		BackendPort:    s.BackendLMTPPort,
		UsernameFormat: s.AuthUsernameFormat,
		MaxRecipients:  s.UsherLMTPMaxRecipients,

		BackendProxyProtocol: s.BackendProxyProtocol == "v2",
	}
}

package lmtp

import (
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/login/logintest"
)

// Every setting the LMTP front-end reads lands in its Config; nothing else is set (the
// front-end's own defaults fill the rest).
func TestSetup(t *testing.T) {
	s := logintest.Settings(t, `
login_greeting = Mail here.
backend_lmtp_port = 1024
auth_username_format = %Ln
usher_lmtp_max_recipients = 50
backend_proxy_protocol = v2
`)
	want := Config{Greeting: "Mail here.", BackendPort: 1024, UsernameFormat: "%Ln", MaxRecipients: 50, BackendProxyProtocol: true}
	if got := Setup(s); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

package e2e

import (
	"net/netip"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// certFor makes a self-signed certificate valid for ip, so clients can
// verify it fully (chain and address).
func certFor(t testing.TB, ip netip.Addr) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, _ = testenv.TestCertFor(t, ip)
	return certPEM, keyPEM
}

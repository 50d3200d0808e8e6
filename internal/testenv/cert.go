package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCert returns a fresh self-signed certificate (its own CA) for localhost, 127.0.0.1 and
// ::1, its PKCS#8 key, and a pool that trusts it: what a client needs to verify the proxy.
func TestCert(t testing.TB) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	return TestCertFor(t)
}

// TestCertFor is TestCert for a server on other addresses: the certificate is valid for
// localhost and ips, or for 127.0.0.1 and ::1 when no ips are given.
func TestCertFor(t testing.TB, ips ...netip.Addr) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, cert, err := NewCert(ips...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPEM, keyPEM, pool
}

// NewCert is TestCertFor outside a test (the bench uses it): a self-signed P-256 certificate,
// its own CA, valid for a day, and its PKCS#8 key.
func NewCert(ips ...netip.Addr) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, nil, err
	}
	if len(ips) == 0 {
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	sans := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		sans = append(sans, ip.AsSlice())
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"usher testenv"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           sans,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), cert, nil
}

// WriteCert writes a TestCertFor certificate and key to dir/cert.pem and dir/key.pem, for a
// server configured from files (ssl_cert = <path).
func WriteCert(dir string, ips ...netip.Addr) (certPath, keyPath string, certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, _, err = NewCert(ips...)
	if err != nil {
		return "", "", nil, nil, err
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return "", "", nil, nil, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", nil, nil, err
	}
	return certPath, keyPath, certPEM, keyPEM, nil
}

// TLSCert is TestCertFor as a certificate ready for an in-process tls.Config.
func TLSCert(t testing.TB, ips ...netip.Addr) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, _ := TestCertFor(t, ips...)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return pair
}

package main

import (
	"crypto/tls"

	"github.com/usher-mail/usher/internal/testenv"
)

// benchCert is one self-signed P-256 certificate every TLS endpoint of the run uses, so the
// STARTTLS storm compares the same handshake everywhere. It is the tests' certificate
// (internal/testenv), valid for usher's address; clients do not verify it.
type benchCert struct {
	CertPath, KeyPath string
	TLS               *tls.Config
}

func newBenchCert(dir string) (*benchCert, error) {
	certPath, keyPath, certPEM, keyPEM, err := testenv.WriteCert(dir, usherIP)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &benchCert{CertPath: certPath, KeyPath: keyPath, TLS: &tls.Config{Certificates: []tls.Certificate{pair}}}, nil
}

package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issue makes a certificate for cn signed by parent's key (itself when
// parent is nil) and returns it with its key.
func issue(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: ca, BasicConstraintsValid: true, DNSNames: []string{"loa.example.vn"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// writeChain writes certs as one PEM file and key beside it.
func writeChain(t *testing.T, key *ecdsa.PrivateKey, certs ...*x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	var chain []byte
	for _, c := range certs {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSWarnsOfAnIntermediatePin: without --tls-ca nodes pin the top of
// --tls-cert's chain. For a public CA's fullchain that is an intermediate,
// and a renewal under another one would cut every board off: the
// controller says so at start. A self-signed certificate, or --tls-ca,
// gives no warning.
func TestTLSWarnsOfAnIntermediatePin(t *testing.T) {
	root, rootKey := issue(t, "Root CA", true, nil, nil)
	inter, interKey := issue(t, "R11", true, root, rootKey)
	leaf, leafKey := issue(t, "loa.example.vn", false, inter, interKey)
	cfg := DefaultConfig()
	cfg.TLSCert, cfg.TLSKey = writeChain(t, leafKey, leaf, inter)
	if _, warning, err := loadTLS(cfg); err != nil || !strings.Contains(warning, `"R11"`) || !strings.Contains(warning, "--tls-ca") {
		t.Errorf("fullchain without --tls-ca: warning %q, err %v; want one naming R11 and --tls-ca", warning, err)
	}
	rootFile, _ := writeChain(t, rootKey, root)
	cfg.TLSCA = rootFile
	if _, warning, err := loadTLS(cfg); err != nil || warning != "" {
		t.Errorf("with --tls-ca: warning %q, err %v; want none", warning, err)
	}
	self, selfKey := issue(t, "loa.example.vn", true, nil, nil)
	cfg = DefaultConfig()
	cfg.TLSCert, cfg.TLSKey = writeChain(t, selfKey, self)
	if _, warning, err := loadTLS(cfg); err != nil || warning != "" {
		t.Errorf("self-signed: warning %q, err %v; want none", warning, err)
	}
}

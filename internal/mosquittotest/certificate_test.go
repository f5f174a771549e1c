package mosquittotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRenewedCertificateServedAfterReload proves what docs/deploy.md
// tells a province whose boards reach Mosquitto over TLS with the
// controller's certificate: the controller takes a renewed certificate by
// itself, but Mosquitto (2.0.11) kept serving the old one after its
// files were replaced, and once that expired every board's handshake
// would fail. A new connection must see the renewed certificate after a
// reload (SIGHUP, `systemctl reload mosquitto`), and not before; a
// reload while the files hold a certificate with another's key (written
// half) leaves Mosquitto serving no certificate at all until a reload
// with a good pair, so both files are written before the reload.
func TestRenewedCertificateServedAfterReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca, caKey := issueCert(t, "loaxa test CA", nil, nil)
	first, firstKey := issueCert(t, "localhost", ca, caKey)
	writeCertPair(t, certFile, keyFile, first, firstKey)
	b := Start(t, Options{AllowAnonymous: true, Config: fmt.Sprintf("certfile %s\nkeyfile %s\n", certFile, keyFile)})

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// served is the certificate a new connection sees, or the handshake's
	// error.
	served := func() (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", b.Addr(), &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	// await polls until served reports what want accepts: a reload is
	// asynchronous.
	await := func(step string, want func(*x509.Certificate, error) bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			c, err := served()
			if want(c, err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: a new connection still gets certificate %v (handshake error %v)\n%s", step, serial(c), err, b.Log())
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	if c, err := served(); err != nil || !c.Equal(first) {
		t.Fatalf("at start: certificate %v (handshake error %v), want serial %v\n%s", serial(c), err, first.SerialNumber, b.Log())
	}

	renewed, renewedKey := issueCert(t, "localhost", ca, caKey)
	writeCertPair(t, certFile, keyFile, renewed, renewedKey)
	if c, err := served(); err != nil || !c.Equal(first) {
		t.Fatalf("files renewed, no reload: certificate %v (handshake error %v), want still the first, serial %v", serial(c), err, first.SerialNumber)
	}
	b.Reload()
	await("reloaded", func(c *x509.Certificate, err error) bool { return err == nil && c.Equal(renewed) })

	half, _ := issueCert(t, "localhost", ca, caKey)
	writeCertPair(t, certFile, keyFile, half, renewedKey) // the new certificate, its key not yet
	b.Reload()
	await("reloaded with a certificate and another's key", func(_ *x509.Certificate, err error) bool { return err != nil })
	writeCertPair(t, certFile, keyFile, renewed, renewedKey)
	b.Reload()
	await("reloaded with the pair again", func(c *x509.Certificate, err error) bool { return err == nil && c.Equal(renewed) })
}

// issueCert makes a certificate for cn, valid for a day, signed by
// parent's key, or a self-signed CA when parent is nil.
func issueCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serialNumber, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if parent == nil {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
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

// writeCertPair writes cert and key as PEM files, as a renewal does.
func writeCertPair(t *testing.T, certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serial names c in a failure, or says there was none.
func serial(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return c.SerialNumber.String()
}

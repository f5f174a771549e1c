package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// serverTLS is the controller's TLS identity: the certificate it serves
// and the PEM nodes pin.
type serverTLS struct {
	server *tls.Config
	pin    string // PEM written into credentials documents
}

// loadTLS reads --tls-cert, --tls-key and --tls-ca; nil without them.
// warning says why the certificate nodes will pin may not outlive a
// renewal.
func loadTLS(cfg Config) (_ *serverTLS, warning string, _ error) {
	if cfg.TLSCert == "" {
		return nil, "", nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s, --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s: %w", cfg.TLSCert, err)
	}
	var pin []byte
	if cfg.TLSCA != "" {
		if pin, err = os.ReadFile(cfg.TLSCA); err != nil {
			return nil, "", fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pin) {
			return nil, "", fmt.Errorf("--tls-ca %s: no PEM certificate in it", cfg.TLSCA)
		}
		inter := x509.NewCertPool()
		for _, der := range cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				inter.AddCert(c)
			}
		}
		// Nodes will verify the chain against it: check now, not on the
		// first board in the field.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
			return nil, "", fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s: %w", cfg.TLSCert, cfg.TLSCA, err)
		}
	} else {
		last := cert.Certificate[len(cert.Certificate)-1]
		pin = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: last})
		if top, err := x509.ParseCertificate(last); err == nil && top.CheckSignatureFrom(top) != nil {
			// A public CA's fullchain ends with an intermediate, and the
			// CA may issue the next renewal under another one.
			warning = fmt.Sprintf("nodes will pin %q, the top of --tls-cert's chain, which is not self-signed: a renewed certificate under another intermediate would cut every board off; give --tls-ca the root (or the CA's certificate) to pin instead", top.Subject.CommonName)
		}
	}
	return &serverTLS{
		server: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		pin:    string(pin),
	}, warning, nil
}

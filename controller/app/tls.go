package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckEvery is how often, at most, a TLS handshake looks whether
// --tls-cert or --tls-key changed on disk.
const certCheckEvery = time.Minute

// serverTLS is the controller's TLS identity: the certificate it serves
// and the PEM nodes pin.
type serverTLS struct {
	server *tls.Config
	pin    string // PEM written into credentials documents
	// enrolCA is pin when the certificate served does not verify against
	// the system's roots, so a board enrolling needs it (node --enrol
	// --ca); "" when the roots every board has suffice.
	enrolCA string
	// broker is the controller's client side towards an external ssl://
	// broker: the system's roots and the pin.
	broker *tls.Config
	reload *certReloader
}

// loadTLS reads --tls-cert, --tls-key and --tls-ca; nil without them.
// warning says why the certificate nodes will pin may not outlive a
// renewal. The certificate served is read again when its files change
// (certReloader); now and logger are the reloader's.
func loadTLS(cfg Config, now func() time.Time, logger *slog.Logger) (_ *serverTLS, warning string, _ error) {
	if cfg.TLSCert == "" {
		return nil, "", nil
	}
	certPEM, keyPEM, err := readPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, "", err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s, --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert %s: %w", cfg.TLSCert, err)
	}
	var pin []byte
	pool := x509.NewCertPool()
	if cfg.TLSCA != "" {
		if pin, err = os.ReadFile(cfg.TLSCA); err != nil {
			return nil, "", fmt.Errorf("--tls-ca: %w", err)
		}
		if !pool.AppendCertsFromPEM(pin) {
			return nil, "", fmt.Errorf("--tls-ca %s: no PEM certificate in it", cfg.TLSCA)
		}
		// Nodes will verify the chain against it: check now, not on the
		// first board in the field.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates(cert)}); err != nil {
			return nil, "", fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s: %w", cfg.TLSCert, cfg.TLSCA, err)
		}
	} else {
		last := cert.Certificate[len(cert.Certificate)-1]
		pin = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: last})
		pool.AppendCertsFromPEM(pin)
		if top, err := x509.ParseCertificate(last); err == nil && top.CheckSignatureFrom(top) != nil {
			// A public CA's fullchain ends with an intermediate, and the
			// CA may issue the next renewal under another one.
			warning = fmt.Sprintf("nodes will pin %q, the top of --tls-cert's chain, which is not self-signed: a renewed certificate under another intermediate would cut every board off; give --tls-ca the root (or the CA's certificate) to pin instead", top.Subject.CommonName)
		}
	}
	// Judged once: a renewal is served only if it verifies against the
	// same pin (certReloader), which is in the system's roots or not for
	// the renewal as for this certificate.
	var enrolCA string
	if !verifiesWith(leaf, cert, nil, now()) {
		enrolCA = string(pin)
	}
	r := &certReloader{
		certFile: cfg.TLSCert, keyFile: cfg.TLSKey, pinned: pool,
		now: now, every: certCheckEvery, logger: logger, externalBroker: cfg.BrokerURL != "",
		cert: &cert, certPEM: certPEM, keyPEM: keyPEM, checked: now(),
	}
	return &serverTLS{
		server:  &tls.Config{GetCertificate: r.getCertificate, MinVersion: tls.VersionTLS12},
		pin:     string(pin),
		enrolCA: enrolCA,
		broker:  &tls.Config{RootCAs: brokerRoots(pin), MinVersion: tls.VersionTLS12, VerifyConnection: r.brokerConnected},
		reload:  r,
	}, warning, nil
}

// brokerRoots are the certificates the controller trusts in an external
// ssl:// broker: the system's roots, for a broker with a public CA's
// certificate, and the pin. The boards reach an ssl:// broker trusting
// only the pin, so the broker they share with the controller has a
// certificate issued under it: the province's own CA, or the controller's
// self-signed certificate (docs/deploy.md, "Boards enrolled before the
// move"), which no system's roots hold.
func brokerRoots(pin []byte) *x509.CertPool {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(pin)
	return roots
}

// verifiesWith reports whether cert, whose first certificate is leaf,
// verifies against roots (the system's when nil), as a board that pins
// nothing yet checks the controller while it enrols. Only the chain is
// judged: the name the boards reach the controller by is not known here.
func verifiesWith(leaf *x509.Certificate, cert tls.Certificate, roots *x509.CertPool, now time.Time) bool {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates(cert), CurrentTime: now})
	return err == nil
}

// readPair reads the certificate and key files.
func readPair(certFile, keyFile string) (certPEM, keyPEM []byte, _ error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err = os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// intermediates returns the certificates of cert's chain after its leaf.
func intermediates(cert tls.Certificate) *x509.CertPool {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	return inter
}

// certReloader serves the certificate of --tls-cert and --tls-key to the
// HTTPS and MQTTS listeners, and takes a renewed one without a restart: a
// public CA's certificate lasts 60–90 days, and restarting the controller
// cuts every board's broker connection and any live call. At most every
// `every`, a handshake reads both files again; when they changed, the new
// pair is served from the next handshake on, if it loads and verifies
// against the certificate nodes pin. Otherwise the pair served until now
// stays and the error is logged once: a certificate the boards refuse
// would cut them all off, and the old one still works until it expires.
// A pair refused only because it is not valid yet (its NotBefore ahead of
// the controller's clock) is tried again at every check until it is.
type certReloader struct {
	certFile, keyFile string
	pinned            *x509.CertPool // what nodes verify the controller with
	now               func() time.Time
	every             time.Duration
	logger            *slog.Logger
	// externalBroker is set with --broker: the boards' broker may serve
	// this certificate too (docs/deploy.md, "Boards enrolled before the
	// move"), and Mosquitto reads it only at start and on a reload.
	externalBroker bool
	// brokerSeen is what the external broker served at the controller's
	// last TLS connection to it (brokerConnected); nil without one.
	brokerSeen atomic.Pointer[brokerCertificate]

	mu              sync.Mutex
	cert            *tls.Certificate
	certPEM, keyPEM []byte // the files as last read
	checked         time.Time
	failed          string // the error last logged, not to repeat it
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.every || now.Before(r.checked) {
		r.checked = now
		switch err := r.check(now); {
		case err == nil:
			r.failed = ""
		case err.Error() != r.failed:
			r.failed = err.Error()
			r.logger.Error("tls: still serving the certificate served until now, not the pair the files hold", "err", err)
		}
	}
	return r.cert, nil
}

// check reads the files and, when they changed, serves the pair they hold.
func (r *certReloader) check(now time.Time) error {
	certPEM, keyPEM, err := readPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return nil
	}
	// Tried once per change: a pair written half (the certificate, not
	// yet its key) is taken when the key follows.
	triedCert, triedKey := r.certPEM, r.keyPEM
	r.certPEM, r.keyPEM = certPEM, keyPEM
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("renewed --tls-cert %s, --tls-key %s: %w", r.certFile, r.keyFile, err)
	}
	verify := func(at time.Time) error {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: r.pinned, Intermediates: intermediates(cert), CurrentTime: at})
		return err
	}
	if err := verify(now); err != nil {
		if from := validFrom(cert); now.Before(from) && verify(from) == nil {
			// Issued minutes ago by a CA whose clock is ahead of ours: it
			// is good from its NotBefore on, and the files will not
			// change again to say so. Tried again at every check.
			r.certPEM, r.keyPEM = triedCert, triedKey
			return fmt.Errorf("renewed --tls-cert %s is valid only from %s, later than the controller's clock: it is served from the first check after then", r.certFile, from.UTC().Format(time.RFC3339))
		}
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			return fmt.Errorf("renewed --tls-cert %s is not signed under the certificate nodes pin (--tls-ca, or the top of the chain served at start), so every board would refuse it: renew with the same CA, or restart and enrol the boards again: %w", r.certFile, err)
		}
		return fmt.Errorf("renewed --tls-cert %s: %w", r.certFile, err)
	}
	old := r.cert
	r.cert = &cert
	r.logger.Info("tls: serving the renewed certificate", "subject", cert.Leaf.Subject.CommonName, "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
	if r.externalBroker {
		r.sayBrokerReload(old.Leaf, cert.Leaf)
	}
	return nil
}

// brokerCertificate is the certificate an external broker served, and
// when.
type brokerCertificate struct {
	cert *x509.Certificate
	at   time.Time
}

// brokerConnected is VerifyConnection of the controller's TLS towards an
// external broker: it notes the certificate the broker serves, so that a
// renewal can say whether that broker needs a reload.
func (r *certReloader) brokerConnected(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 {
		r.brokerSeen.Store(&brokerCertificate{cert: cs.PeerCertificates[0], at: r.now()})
	}
	return nil
}

// reloadFiles is what a reload of Mosquitto needs of the files, tried
// with 2.0.11 (internal/mosquittotest TestUnreadableKeyOnReload).
const reloadFiles = "with both files readable by user mosquitto: a reload that can read the new certificate but not its key serves no certificate at all, and every board's handshake fails until a reload finds a pair it can read (Mosquitto logs \"Error when reloading certificate\")"

// sayBrokerReload tells, after a renewal from old to renewed, whether the
// external broker must be reloaded, from what it served at the
// controller's last TLS connection to it. Mosquitto 2.0 does not watch
// its certfile: without a reload it serves the old certificate until it
// expires, and then every board's handshake fails.
func (r *certReloader) sayBrokerReload(old, renewed *x509.Certificate) {
	seen := r.brokerSeen.Load()
	switch {
	case seen == nil:
		// A tcp:// link, or none yet: the boards may still reach the
		// broker over TLS with this certificate.
		r.logger.Warn("tls: if the external broker serves this certificate too (Mosquitto's certfile and keyfile; the controller's own link to it is not TLS, or has not connected, so the controller cannot tell), reload it now (systemctl reload mosquitto), "+reloadFiles+": until then it serves the old one, and every board's handshake fails once that expires",
			"serial", renewed.SerialNumber.String(), "old_not_after", old.NotAfter)
	case seen.cert.Equal(old):
		r.logger.Warn("tls: the external broker serves the certificate this controller served until now (seen at the controller's last connection to it): reload it now (systemctl reload mosquitto), "+reloadFiles+": until then it serves the old one, and every board's handshake fails once that expires",
			"serial", renewed.SerialNumber.String(), "broker_serial", seen.cert.SerialNumber.String(), "old_not_after", old.NotAfter, "seen_at", seen.at)
	case seen.cert.Equal(renewed):
		r.logger.Info("tls: the external broker serves the renewed certificate already", "serial", renewed.SerialNumber.String(), "seen_at", seen.at)
	default:
		r.logger.Info("tls: the external broker serves a certificate of its own, not this controller's (seen at the controller's last connection to it): no reload needed there for this renewal, unless another of its listeners serves the controller's certificate",
			"broker_subject", seen.cert.Subject.CommonName, "broker_serial", seen.cert.SerialNumber.String(), "broker_not_after", seen.cert.NotAfter, "seen_at", seen.at)
	}
}

// validFrom is when every certificate of cert's chain is valid: the
// latest of their NotBefore.
func validFrom(cert tls.Certificate) time.Time {
	var from time.Time
	for _, der := range cert.Certificate {
		if c, err := x509.ParseCertificate(der); err == nil && c.NotBefore.After(from) {
			from = c.NotBefore
		}
	}
	return from
}

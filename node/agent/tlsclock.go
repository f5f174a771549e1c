package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"time"
)

// Verifying the controller's certificate on the agent's clock. Go's TLS
// client judges a certificate's validity on the board's system clock. A
// board without an RTC battery, where NTP does not reach, boots with that
// clock days or years behind and refuses a certificate issued after it as
// not valid yet: it can neither connect to the broker nor measure the
// controller's time, over the same HTTPS, that would correct its clock.
//
// So the agent verifies what Go would (the chain to the pinned CA, or the
// system's roots without one, and the host name), on its own clock: the
// corrected one once measured; before that, the board's moved up to its
// clock floor (clockfloor.go). Before the first measurement, a chain that
// is valid but for not being valid yet on that clock is taken: valid at
// the latest NotBefore of the certificates served, a time after the best
// the board knows. It is never one that expired on that clock (it would
// have expired at that later time too). Once measured, the clock judges
// alone.
//
// What someone between the board and the controller gains by this is a
// certificate the pinned CA signed for the controller's host, not valid
// yet by the board's clock: one whose key they hold, which expired since
// (the board cannot know), is taken until the first measurement, which
// they can withhold but not forge (the time answer is signed for the
// node's nonce, timesync.go). A board whose clock is behind already took
// such a certificate whenever its window held the board's time; the clock
// floor now refuses the ones that expired before it. Messages stay signed
// and content is checked by its hash whatever TLS lets through.

// controllerTLS returns base for reaching the host of rawURL (the
// credentials' broker or controller URL), with its certificate verified
// on the agent's clock. Go's own verification is turned off because it
// would run on the board's clock; verifyCertificate does all of it.
func (a *Agent) controllerTLS(base *tls.Config, rawURL string) *tls.Config {
	cfg := base.Clone()
	host := ""
	if u, err := url.Parse(rawURL); err == nil {
		host = u.Hostname()
	}
	// Verified against the credentials' host name (or IP address, which
	// a TLS client does not send as its server name): the HTTP transport
	// and the link only set it when empty.
	cfg.ServerName = host
	cfg.InsecureSkipVerify = true
	roots := base.RootCAs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return a.verifyCertificate(cs.PeerCertificates, roots, host)
	}
	return cfg
}

// verifyCertificate verifies the chain certs a server sent for host
// against roots (nil: the system's) on the agent's clock, as Go's TLS
// client would on the system clock, and before the first measurement
// takes a chain valid from a time after that clock.
func (a *Agent) verifyCertificate(certs []*x509.Certificate, roots *x509.CertPool, host string) error {
	if len(certs) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	if host == "" {
		return errors.New("tls: no host name to verify the certificate for")
	}
	now := a.clock.Now()
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	if err == nil {
		return nil
	}
	from := now
	for _, c := range certs {
		if c.NotBefore.After(from) {
			from = c.NotBefore
		}
	}
	if from.Equal(now) || a.clockEstimate.Load() != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	opts.CurrentTime = from
	if _, err := certs[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	if !a.earlyCertLogged.Swap(true) {
		a.log.Warn("agent: the controller's certificate is valid only from a time after this board's clock; taking it, as it chains to the trusted CA, until the controller's time is measured",
			"host", host, "valid_from", from, "clock", now, "behind", from.Sub(now).Round(time.Second))
	}
	return nil
}

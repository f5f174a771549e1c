package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
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
// alone. Enrolment (node --enrol, EnrolTLS) verifies the same way, on
// the board's clock moved up to the floor its store holds, if any (a
// board enrolled again after its credentials file was deleted): it can
// measure nothing before it has the controller's keys.
//
// What someone between the board and the controller gains by this is a
// certificate the pinned CA signed for the controller's host, not valid
// yet by the board's clock: one whose key they hold, which expired since
// (the board cannot know), is taken until the first measurement, which
// they can withhold but not forge (the time answer is signed for the
// node's nonce, timesync.go). A board whose clock is behind already took
// such a certificate whenever its window held the board's time; the clock
// floor now refuses the ones that expired before it. Messages stay signed
// and content is checked by its hash whatever TLS lets through. At
// enrolment such a certificate is handed the one-time code (and sees the
// credentials it is exchanged for), as it already was by a board whose
// clock is behind while its window held that clock; the technician is
// told the certificate was taken and the time it is valid from.

// controllerTLS returns base for reaching the host of rawURL (the
// credentials' broker or controller URL), with its certificate verified
// on the agent's clock.
func (a *Agent) controllerTLS(base *tls.Config, rawURL string) *tls.Config {
	return verifiedTLS(base, rawURL, a.verifyCertificate)
}

// EnrolTLS returns base for enrolling at the controller URL rawURL, with
// its certificate verified as the agent verifies it before its first
// measurement, on now (the board's clock) moved up to floor (the clock
// floor in the board's store, zero if it has none) when behind it: a
// chain that expired before the floor is refused, and one that is valid
// but for not being valid yet is taken, and said once on log. A
// technician enrols a fresh board right after power-on, its clock at its
// image's date until NTP answers, if ever. Nothing can be measured first:
// the time answer is signed by a key the board learns by enrolling.
func EnrolTLS(base *tls.Config, rawURL string, now func() time.Time, floor time.Time, log *slog.Logger) *tls.Config {
	var behind time.Duration
	if board := now(); board.Before(floor) {
		behind = floor.Sub(board)
		log.Warn("enrol: the board's clock is behind the last time the controller proved (the clock floor in its store); judging the controller's certificate from that time",
			"board_clock", board, "floor", floor, "behind", behind.Round(time.Second))
	}
	var logged atomic.Bool
	return verifiedTLS(base, rawURL, func(certs []*x509.Certificate, roots *x509.CertPool, host string) error {
		t := now().Add(behind)
		from, err := verifyChain(certs, roots, host, t, true)
		if err != nil {
			on := onBoardClock
			if behind > 0 {
				on = onFloor
			}
			return outsideValidity(err, certs, host, t, on, " and enrol again")
		}
		if !from.IsZero() && !logged.Swap(true) {
			log.Warn("enrol: the controller's certificate is valid only from a time after this board's clock; taking it, as it chains to the trusted CA",
				"host", host, "valid_from", from, "clock", t, "behind", from.Sub(t).Round(time.Second))
		}
		return nil
	})
}

// judgedOn is the clock a certificate was judged on.
type judgedOn int

const (
	onBoardClock judgedOn = iota // the board's own, nothing proved yet
	onFloor                      // the board's, moved up to its clock floor
	onMeasured                   // corrected to the controller's measured time
)

// outsideValidity wraps err, the refusal of the chain certs for host
// judged at t, when it refused a certificate outside its validity: Go's
// "certificate has expired or is not yet valid" says neither which clock
// judged nor what to mend, and the technician enrolling a board whose
// clock is wrong (an RTC set ahead) did not know to set its date. It names
// the clock time (on: which clock) and the certificate's validity, and
// says what to set or renew; again is what follows setting the date (an
// enrolment is run again, an agent tries again by itself).
func outsideValidity(err error, certs []*x509.Certificate, host string, t time.Time, on judgedOn, again string) error {
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired || invalid.Cert == nil {
		return err
	}
	c := invalid.Cert
	what := "the controller's certificate for " + host
	if !c.Equal(certs[0]) {
		what = fmt.Sprintf("the certificate %q in the controller's chain", c.Subject.CommonName)
	}
	valid := fmt.Sprintf("%s is valid from %s to %s", what, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	at := t.UTC().Format(time.RFC3339)
	switch {
	case on == onMeasured && t.After(c.NotAfter):
		return fmt.Errorf("%s, and the controller's own time, as this board measured it, is %s: it has expired; renew the controller's certificate: %w",
			valid, at, err)
	case on == onMeasured:
		return fmt.Errorf("%s, and the controller's own time, as this board measured it, is %s, before that: check the controller's certificate: %w",
			valid, at, err)
	case on == onFloor && t.After(c.NotAfter):
		return fmt.Errorf("%s, and this board's clock, moved up to the last time the controller proved (the clock floor in its store), reads %s: it expired before that time; renew the controller's certificate: %w",
			valid, at, err)
	case t.After(c.NotAfter):
		return fmt.Errorf("%s, and this board's clock reads %s, after it expired: if the board's date is wrong, set the board's date (date -u -s 'YYYY-MM-DD HH:MM:SS')%s; if it is right, renew the controller's certificate: %w",
			valid, at, again, err)
	default:
		return fmt.Errorf("%s, and this board's clock reads %s, outside that: if the board's date is wrong, set the board's date (date -u -s 'YYYY-MM-DD HH:MM:SS')%s; if it is right, check the controller's certificate: %w",
			valid, at, again, err)
	}
}

// verifiedTLS returns base (its RootCAs: the pinned CA, or nil for the
// system's roots) for reaching the host of rawURL, with the certificate
// verified by verify. Go's own verification is turned off because it
// would run on the board's clock; verify does all of it.
func verifiedTLS(base *tls.Config, rawURL string, verify func(certs []*x509.Certificate, roots *x509.CertPool, host string) error) *tls.Config {
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
		return verify(cs.PeerCertificates, roots, host)
	}
	return cfg
}

// verifyCertificate verifies the chain certs a server sent for host
// against roots (nil: the system's) on the agent's clock, taking before
// the first measurement a chain valid from a time after that clock.
func (a *Agent) verifyCertificate(certs []*x509.Certificate, roots *x509.CertPool, host string) error {
	now := a.clock.Now()
	measured := a.clockEstimate.Load() != nil
	from, err := verifyChain(certs, roots, host, now, !measured)
	if err != nil {
		// Said in the link's and the fetches' errors, which the agent
		// logs: the technician reading them learns what to mend.
		on := onBoardClock
		switch {
		case measured:
			on = onMeasured
		case a.clock.Get() > 0:
			on = onFloor // moved up to the floor at start (clockfloor.go)
		}
		return outsideValidity(err, certs, host, now, on, " (the agent tries again by itself)")
	}
	if !from.IsZero() && !a.earlyCertLogged.Swap(true) {
		a.log.Warn("agent: the controller's certificate is valid only from a time after this board's clock; taking it, as it chains to the trusted CA, until the controller's time is measured",
			"host", host, "valid_from", from, "clock", now, "behind", from.Sub(now).Round(time.Second))
	}
	return err
}

// verifyChain verifies the chain certs a server sent for host against
// roots (nil: the system's) at now, as Go's TLS client would on the
// system clock. With early (no measurement yet) it takes a chain valid
// but for not being valid yet at now, verified at the latest NotBefore of
// certs, and returns that time (zero when the chain is valid at now).
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, host string, now time.Time, early bool) (time.Time, error) {
	if len(certs) == 0 {
		return time.Time{}, errors.New("tls: the server sent no certificate")
	}
	if host == "" {
		return time.Time{}, errors.New("tls: no host name to verify the certificate for")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	if err == nil {
		return time.Time{}, nil
	}
	from := now
	for _, c := range certs {
		if c.NotBefore.After(from) {
			from = c.NotBefore
		}
	}
	if from.Equal(now) || !early {
		return time.Time{}, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	opts.CurrentTime = from
	if _, err := certs[0].Verify(opts); err != nil {
		return time.Time{}, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return from, nil
}

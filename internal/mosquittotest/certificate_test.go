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
	osuser "os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
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

// TestUnreadableKeyOnReload tries what docs/deploy.md had only inferred:
// what a reload of Mosquitto (2.0.11, as user mosquitto, as Debian runs
// it) does when the renewed key it is pointed at cannot be read by that
// user (a deploy hook that installed it root-only, or for
// loaxa-controller alone) or is not a key at all. Mosquitto keeps running
// and keeps its connected clients connected, and logs "Error when
// reloading certificate"; what new connections get depends on which file
// failed: with both files unreadable it goes on serving the old pair;
// with the new certificate readable and its key not (or garbage) it serves
// no certificate at all and every new handshake fails ("no shared
// cipher"), until a reload finds a pair it can read. A restart with the
// key unreadable does not start.
func TestUnreadableKeyOnReload(t *testing.T) {
	user := ""
	if os.Geteuid() == 0 {
		// Root reads every file: the broker must run as another user for
		// a file to be unreadable to it.
		user = "mosquitto"
		if _, err := osuser.Lookup(user); err != nil {
			t.Skipf("no user %q to run mosquitto as (Debian's mosquitto package makes it): %v", user, err)
		}
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	certFile, keyFile := filepath.Join(dir, "loaxa.crt"), filepath.Join(dir, "loaxa.key")
	ca, caKey := issueCert(t, "loaxa test CA", nil, nil)
	old, oldKey := issueCert(t, "localhost", ca, caKey)
	renewed, renewedKey := issueCert(t, "localhost", ca, caKey)
	// readable makes the files readable to the broker's user (root:mosquitto
	// 0640 in a deployment), unreadable takes that away: root-only, or no
	// permission at all for a broker that runs as this process's user.
	readable := func(files ...string) {
		t.Helper()
		for _, f := range files {
			if err := os.Chmod(f, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	unreadable := func(files ...string) {
		t.Helper()
		mode := os.FileMode(0o600)
		if user == "" {
			mode = 0
		}
		for _, f := range files {
			if err := os.Chmod(f, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeCertPair(t, certFile, keyFile, old, oldKey)
	readable(certFile, keyFile)
	b := Start(t, Options{AllowAnonymous: true, User: user, Config: fmt.Sprintf("certfile %s\nkeyfile %s\n", certFile, keyFile)})

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tlsConfig := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	served := func() (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", b.Addr(), tlsConfig)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	if c, err := served(); err != nil || !c.Equal(old) {
		t.Fatalf("at start: certificate %v (handshake error %v), want serial %v\n%s", serial(c), err, old.SerialNumber, b.Log())
	}

	// A board connected before the reloads; it must stay connected and
	// keep getting its messages through all of them (no reconnection:
	// auto-reconnect is off, and a lost connection fails the publish).
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + b.Addr()).SetClientID("n1").SetTLSConfig(tlsConfig).
		SetAutoReconnect(false).SetConnectTimeout(wait)
	board := mqtt.NewClient(opts)
	if tok := board.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect over TLS: %v\n%s", tok.Error(), b.Log())
	}
	defer board.Disconnect(100)
	got := subscribe(t, board, "loa/v1/node/n1/#")
	stillConnected := func(step string) {
		t.Helper()
		if !board.IsConnectionOpen() {
			t.Fatalf("%s: the board connected before was cut off\n%s", step, b.Log())
		}
		publish(t, board, "loa/v1/node/n1/cmd", step)
		receive(t, got, step)
	}

	// reload sends SIGHUP and waits until the broker has said what it
	// made of the files: a reload is asynchronous.
	reload := func(step string, failed bool) {
		t.Helper()
		from := len(b.Log())
		b.Reload()
		deadline := time.Now().Add(wait)
		for {
			log := b.Log()[from:]
			if strings.Contains(log, "Reloading config.") && (!failed || strings.Contains(log, "Error when reloading certificate")) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: mosquitto did not say it reloaded (failed: %t) within %v\n%s", step, failed, wait, b.Log())
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	// await polls until a new connection gets what want accepts: after a
	// good reload the certificate is read after the log line.
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

	// The renewal installed root-only (or for loaxa-controller only):
	// neither file loads, and the old pair stays.
	writeCertPair(t, certFile, keyFile, renewed, renewedKey)
	unreadable(certFile, keyFile)
	reload("both files unreadable", true)
	if c, err := served(); err != nil || !c.Equal(old) {
		t.Errorf("both files unreadable, reloaded: certificate %v (handshake error %v), want still the old one, serial %v", serial(c), err, old.SerialNumber)
	}
	if !strings.Contains(b.Log(), "Permission denied") {
		t.Errorf("mosquitto's log does not say why it could not load the files:\n%s", b.Log())
	}
	stillConnected("both files unreadable")

	// The certificate readable, its key not: the new certificate is
	// taken, the old key does not go with it, and no pair is served.
	readable(certFile)
	reload("the key unreadable", true)
	if c, err := served(); err == nil {
		t.Errorf("the new certificate readable, its key not, reloaded: a new connection got certificate %v, want no certificate served", serial(c))
	}
	// The broker logs the handshake's end after the client saw it.
	for deadline := time.Now().Add(wait); !strings.Contains(b.Log(), "no shared cipher"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto's log does not say why the handshake failed:\n%s", b.Log())
		}
	}
	stillConnected("the key unreadable")

	// The key readable again: served after the next reload.
	readable(keyFile)
	reload("both files readable", false)
	await("both files readable, reloaded", func(c *x509.Certificate, err error) bool { return err == nil && c.Equal(renewed) })
	stillConnected("both files readable")

	// Another renewal whose key is no key (garbage, readable): no pair
	// either.
	another, anotherKey := issueCert(t, "localhost", ca, caKey)
	writeCertPair(t, certFile, keyFile, another, anotherKey)
	readable(certFile, keyFile)
	if err := os.WriteFile(keyFile, []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload("a garbage key", true)
	if c, err := served(); err == nil {
		t.Errorf("a garbage key, reloaded: a new connection got certificate %v, want no certificate served", serial(c))
	}
	stillConnected("a garbage key")

	// A restart (not a reload) with the key unreadable does not start.
	writeCertPair(t, certFile, keyFile, renewed, renewedKey)
	readable(certFile)
	unreadable(keyFile)
	board.Disconnect(100)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.start(); err == nil {
		t.Errorf("restarted with the key unreadable: mosquitto runs, want it to refuse to start")
	} else if log := b.Log(); !strings.Contains(log, "Unable to load server key file") {
		t.Errorf("restarted with the key unreadable: %v; the log does not say the key could not be loaded:\n%s", err, log)
	}
}

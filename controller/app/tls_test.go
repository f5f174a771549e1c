package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/internal/syncbuf"
)

// issue makes a certificate for cn signed by parent's key (itself when
// parent is nil) and returns it with its key.
func issue(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	return issueFrom(t, time.Now().Add(-time.Hour), cn, ca, parent, parentKey)
}

// issueFrom is issue for a certificate valid from notBefore.
func issueFrom(t *testing.T, notBefore time.Time, cn string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notBefore.Add(25 * time.Hour),
		IsCA: ca, BasicConstraintsValid: true, DNSNames: []string{"loa.example.vn", "localhost"},
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
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certFile, keyFile, key, certs...)
	return certFile, keyFile
}

// writePair writes certs as one PEM file to certFile and key to keyFile,
// replacing what they held, as a renewal does.
func writePair(t *testing.T, certFile, keyFile string, key *ecdsa.PrivateKey, certs ...*x509.Certificate) {
	t.Helper()
	var chain []byte
	for _, c := range certs {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
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
	if _, warning, err := loadTLS(cfg, time.Now, slog.New(slog.DiscardHandler)); err != nil || !strings.Contains(warning, `"R11"`) || !strings.Contains(warning, "--tls-ca") {
		t.Errorf("fullchain without --tls-ca: warning %q, err %v; want one naming R11 and --tls-ca", warning, err)
	}
	rootFile, _ := writeChain(t, rootKey, root)
	cfg.TLSCA = rootFile
	if _, warning, err := loadTLS(cfg, time.Now, slog.New(slog.DiscardHandler)); err != nil || warning != "" {
		t.Errorf("with --tls-ca: warning %q, err %v; want none", warning, err)
	}
	self, selfKey := issue(t, "loa.example.vn", true, nil, nil)
	cfg = DefaultConfig()
	cfg.TLSCert, cfg.TLSKey = writeChain(t, selfKey, self)
	if _, warning, err := loadTLS(cfg, time.Now, slog.New(slog.DiscardHandler)); err != nil || warning != "" {
		t.Errorf("self-signed: warning %q, err %v; want none", warning, err)
	}
}

// TestTLSRenewedCertificateServedWithoutRestart: a province on a public
// CA renews its certificate every 60–90 days, and the controller served
// the one it read at start until restarted, which cuts every board's
// broker connection and any live call; left alone, the boards were cut
// off when it expired. Both listeners, HTTPS and MQTTS, must serve the
// renewed pair once its files change (checked at most every
// certCheckEvery), and keep the pair they serve, saying why in the log,
// when the new files do not hold a pair that loads or one the boards'
// pin would accept.
func TestTLSRenewedCertificateServedWithoutRestart(t *testing.T) {
	root, rootKey := issue(t, "Root CA", true, nil, nil)
	first, firstKey := issue(t, "loa.example.vn", false, root, rootKey)
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey = writeChain(t, firstKey, first)
	cfg.TLSCA, _ = writeChain(t, rootKey, root)
	var logs syncbuf.Buffer
	a := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	fc := clock.NewFake(time.Now())
	a.Clock = fc
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	startLogNames(t, logs.String(), "http=https://"+a.HTTP.ListenAddr(), "mqtt=ssl://"+a.Broker.ListenAddr())

	roots := x509.NewCertPool()
	roots.AddCert(root)
	listeners := map[string]string{"HTTPS": strings.TrimPrefix(a.HTTP.URL(), "https://"), "MQTTS": a.Broker.ListenAddr()}
	// served checks that every listener serves want in a real handshake.
	served := func(step string, want *x509.Certificate) {
		t.Helper()
		for name, addr := range listeners {
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "loa.example.vn", MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Errorf("%s: %s handshake: %v", step, name, err)
				continue
			}
			if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(want) {
				t.Errorf("%s: %s serves serial %v, want %v", step, name, got.SerialNumber, want.SerialNumber)
			}
			conn.Close()
		}
	}
	served("at start", first)

	renewed, renewedKey := issue(t, "loa.example.vn", false, root, rootKey)
	writePair(t, cfg.TLSCert, cfg.TLSKey, renewedKey, renewed)
	served("renewed, before the next check", first)
	fc.Advance(certCheckEvery)
	served("renewed", renewed)
	if !strings.Contains(logs.String(), "serving the renewed certificate") {
		t.Errorf("the log does not say the renewed certificate is served:\n%s", logs.String())
	}

	broken, _ := issue(t, "loa.example.vn", false, root, rootKey)
	writePair(t, cfg.TLSCert, cfg.TLSKey, renewedKey, broken) // the key of another certificate
	fc.Advance(certCheckEvery)
	served("a certificate with another's key", renewed)
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("the log does not say why the new pair was not taken:\n%s", logs.String())
	}

	other, otherKey := issue(t, "Other CA", true, nil, nil)
	stranger, strangerKey := issue(t, "loa.example.vn", false, other, otherKey)
	writePair(t, cfg.TLSCert, cfg.TLSKey, strangerKey, stranger)
	fc.Advance(certCheckEvery)
	served("a certificate of another CA", renewed)
	if !strings.Contains(logs.String(), "not signed under the certificate nodes pin") {
		t.Errorf("the log does not say the boards would refuse the new certificate:\n%s", logs.String())
	}
}

// TestTLSRenewedCertificateNotYetValidServedFromItsNotBefore: a renewal
// issued minutes ago by a CA whose clock runs ahead of the controller's
// is not valid yet on the controller's clock. It was refused, and, its
// files tried once per change, never tried again: the controller served
// the old certificate until it expired and every board was cut off. It
// must be kept aside, said once in the log, and served from the first
// check after its NotBefore, the files unchanged.
func TestTLSRenewedCertificateNotYetValidServedFromItsNotBefore(t *testing.T) {
	root, rootKey := issue(t, "Root CA", true, nil, nil)
	first, firstKey := issue(t, "loa.example.vn", false, root, rootKey)
	cfg := DefaultConfig()
	cfg.TLSCert, cfg.TLSKey = writeChain(t, firstKey, first)
	cfg.TLSCA, _ = writeChain(t, rootKey, root)
	var logs syncbuf.Buffer
	fc := clock.NewFake(time.Now().Truncate(time.Second)) // as certificates hold it
	s, _, err := loadTLS(cfg, fc.Now, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	serves := func(step string, want *x509.Certificate) {
		t.Helper()
		got, err := s.server.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !bytes.Equal(got.Certificate[0], want.Raw) {
			t.Fatalf("%s: serves another certificate than serial %v", step, want.SerialNumber)
		}
	}
	renewed, renewedKey := issueFrom(t, fc.Now().Add(10*time.Minute), "loa.example.vn", false, root, rootKey)
	writePair(t, cfg.TLSCert, cfg.TLSKey, renewedKey, renewed)
	for range 9 {
		fc.Advance(certCheckEvery)
		serves(renewed.NotBefore.Sub(fc.Now()).String()+" before its NotBefore", first)
	}
	if n := strings.Count(logs.String(), "is valid only from"); n != 1 {
		t.Errorf("the log says %d times that the renewal is not valid yet, want once:\n%s", n, logs.String())
	}
	fc.Advance(certCheckEvery)
	serves("at its NotBefore", renewed)
	if !strings.Contains(logs.String(), "serving the renewed certificate") {
		t.Errorf("the log does not say the renewed certificate is served:\n%s", logs.String())
	}
}

// TestTLSRenewalSaysToReloadTheExternalBroker: a province that moved to
// Mosquitto serves the controller's certificate there too (docs/deploy.md,
// "Boards enrolled before the move"). The controller took a renewal and
// said only "serving the renewed certificate", but Mosquitto keeps the
// old one until it is reloaded (tried with 2.0.11), and when that expired
// every board's handshake failed. With an external broker the renewal
// must say to reload it; with the embedded broker, which serves the
// renewal itself, it must not.
func TestTLSRenewalSaysToReloadTheExternalBroker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker string
		want   bool
	}{
		{"embedded broker", "", false},
		{"external broker", "ssl://loaxa-controller:mat-khau@loa.example.vn:8883", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, rootKey := issue(t, "Root CA", true, nil, nil)
			first, firstKey := issue(t, "loa.example.vn", false, root, rootKey)
			cfg := DefaultConfig()
			cfg.BrokerURL = tc.broker
			cfg.TLSCert, cfg.TLSKey = writeChain(t, firstKey, first)
			cfg.TLSCA, _ = writeChain(t, rootKey, root)
			var logs syncbuf.Buffer
			fc := clock.NewFake(time.Now())
			s, _, err := loadTLS(cfg, fc.Now, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			renewed, renewedKey := issue(t, "loa.example.vn", false, root, rootKey)
			writePair(t, cfg.TLSCert, cfg.TLSKey, renewedKey, renewed)
			fc.Advance(certCheckEvery)
			got, err := s.server.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Certificate[0], renewed.Raw) {
				t.Fatalf("the renewed certificate is not served:\n%s", logs.String())
			}
			if said := strings.Contains(logs.String(), "systemctl reload mosquitto"); said != tc.want {
				t.Errorf("the log says to reload Mosquitto: %t, want %t:\n%s", said, tc.want, logs.String())
			}
		})
	}
}

// TestEnrolmentCommandReadsTheCertificateToTrust: a controller on a
// certificate of the province's own CA (or a self-signed one) printed the
// enrolment command without --ca, and a technician who ran it as printed
// got "certificate signed by unknown authority" on the board. When the
// certificate does not verify against the system's roots, the answer must
// carry the certificate the boards pin (ca_pem) and its command read it
// with --ca; when it does, neither.
func TestEnrolmentCommandReadsTheCertificateToTrust(t *testing.T) {
	root, rootKey := issue(t, "Sở TT&TT Hải Phòng CA", true, nil, nil)
	leaf, leafKey := issue(t, "loa.example.vn", false, root, rootKey)
	self, selfKey := issue(t, "loa.example.vn", true, nil, nil)
	rootPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
	selfPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: self.Raw}))
	for _, tc := range []struct {
		name   string
		key    *ecdsa.PrivateKey
		chain  []*x509.Certificate
		ca     *x509.Certificate // --tls-ca
		pinned string
	}{
		{"the province's own CA", leafKey, []*x509.Certificate{leaf}, root, rootPEM},
		{"self-signed", selfKey, []*x509.Certificate{self}, nil, selfPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLSCert, cfg.TLSKey = writeChain(t, tc.key, tc.chain...)
			if tc.ca != nil {
				cfg.TLSCA, _ = writeChain(t, rootKey, tc.ca)
			}
			a := New(cfg, slog.New(slog.DiscardHandler))
			if err := a.Open(); err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.Areas.CreateArea(context.Background(), &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM([]byte(tc.pinned))
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "loa.example.vn", MinVersion: tls.VersionTLS12}}}
			defer client.CloseIdleConnections()
			call := func(path, token string, body any, out any) {
				t.Helper()
				raw, _ := json.Marshal(body)
				req, _ := http.NewRequest("POST", a.HTTP.URL()+path, bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					msg, _ := io.ReadAll(resp.Body)
					t.Fatalf("POST %s: %d %s", path, resp.StatusCode, msg)
				}
				if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
					t.Fatal(err)
				}
			}
			var signedIn struct{ Token string }
			call("/api/v1/auth/token", "", map[string]string{"username": "admin", "password": cfg.AdminPassword}, &signedIn)
			var created struct {
				Enrolment struct {
					Command string
					CAPEM   string `json:"ca_pem"`
				}
			}
			call("/api/v1/nodes", signedIn.Token, map[string]any{"id": "tt-01", "name": "Cụm loa 1", "area": "31", "credentials": "code"}, &created)
			if en := created.Enrolment; !strings.HasSuffix(en.Command, " --ca "+lhttp.EnrolCAFile) || en.CAPEM != tc.pinned {
				t.Errorf("enrolment answer: command %q, ca_pem the pinned certificate: %v; want the command to end with --ca %s and ca_pem the pinned certificate", en.Command, en.CAPEM == tc.pinned, lhttp.EnrolCAFile)
			}
		})
	}

	// A certificate the system's roots verify needs nothing more: the same
	// judgement with the province's root among the roots.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}}
	if !verifiesWith(leaf, cert, roots, time.Now()) {
		t.Error("a certificate under a trusted root is judged to need --ca")
	}
	if verifiesWith(leaf, cert, nil, time.Now()) {
		t.Error("a certificate of the province's own CA is judged to verify against the system's roots")
	}
}

// TestTLSExternalBrokerUnderThePin: a province moving to Mosquitto runs it
// where its boards already connect, with the controller's certificate of
// the province's own CA (docs/deploy.md, "Boards enrolled before the
// move"), and points --broker at it with ssl://. The controller trusted
// only the system's roots there: every handshake failed (Mosquitto logged
// "bad certificate"), no desired state, command or alert reached a board,
// and every node stayed as it was last seen. The controller must trust
// the certificate its boards pin in its broker too.
func TestTLSExternalBrokerUnderThePin(t *testing.T) {
	root, rootKey := issue(t, "Province CA", true, nil, nil)
	leaf, leafKey := issue(t, "loa.example.vn", false, root, rootKey)
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey = writeChain(t, leafKey, leaf)
	cfg.TLSCA, _ = writeChain(t, rootKey, root)
	const password = "broker-password-28"
	b := mosquittotest.Start(t, mosquittotest.Options{
		Users:  map[string]string{"loaxa-controller": password, "loaxa-controller-pub": password},
		Config: fmt.Sprintf("certfile %s\nkeyfile %s\n", cfg.TLSCert, cfg.TLSKey),
	})
	_, port, _ := strings.Cut(b.Addr(), ":")
	cfg.BrokerURL = "ssl://loaxa-controller:" + password + "@localhost:" + port
	a := New(cfg, slog.New(slog.DiscardHandler))
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.MQTT.WaitConnected(ctx); err != nil {
		t.Fatalf("the controller does not reach its ssl:// broker, whose certificate is under the pin: %v\n%s", err, b.Log())
	}
	// What a renewal's log tells from (TestTLSRenewalSaysWhetherTheExternalBrokerServesIt).
	if seen := a.tls.reload.brokerSeen.Load(); seen == nil || !seen.cert.Equal(leaf) {
		t.Errorf("the controller's MQTT link noted %v as the certificate its broker serves, want its own", seen)
	}
}

// TestTLSRenewalSaysWhetherTheExternalBrokerServesIt: with --broker the
// renewal's warning said "if the external broker serves this certificate
// too, reload it", though the controller's own ssl:// link to that broker
// had seen which certificate it serves; and it did not say that the
// reload needs both files readable by user mosquitto, without which
// Mosquitto serves no certificate at all (internal/mosquittotest
// TestUnreadableKeyOnReload). Against a real Mosquitto: serving the
// controller's certificate, the log says it does and to reload it now,
// with readable files; serving a certificate of its own, that no reload
// is needed; a link not seen over TLS keeps the "if", with the files'
// advice too.
func TestTLSRenewalSaysWhetherTheExternalBrokerServesIt(t *testing.T) {
	root, rootKey := issue(t, "Root CA", true, nil, nil)
	first, firstKey := issue(t, "loa.example.vn", false, root, rootKey)
	own, ownKey := issue(t, "broker.example.vn", false, root, rootKey)
	for _, tc := range []struct {
		name string
		// brokerCert is what Mosquitto serves; nil: the controller's link
		// is not TLS (or has not connected yet).
		brokerCert *x509.Certificate
		brokerKey  *ecdsa.PrivateKey
		want       []string
		not        []string
	}{
		{"the controller's certificate", first, firstKey,
			[]string{"level=WARN", "the external broker serves the certificate this controller served until now", "reload it now (systemctl reload mosquitto)", "readable by user mosquitto", "serves no certificate at all"},
			[]string{"tls: if the external broker"}},
		{"a certificate of its own", own, ownKey,
			[]string{"the external broker serves a certificate of its own", "no reload"},
			[]string{"level=WARN", "reload it now"}},
		{"no TLS link seen", nil, nil,
			[]string{"level=WARN", "tls: if the external broker serves this certificate too", "systemctl reload mosquitto", "readable by user mosquitto"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TLSCert, cfg.TLSKey = writeChain(t, firstKey, first)
			cfg.TLSCA, _ = writeChain(t, rootKey, root)
			cfg.BrokerURL = "ssl://loaxa-controller:mat-khau@localhost:8883"
			var logs syncbuf.Buffer
			fc := clock.NewFake(time.Now())
			s, _, err := loadTLS(cfg, fc.Now, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.brokerCert != nil {
				// Mosquitto's own copy of the files, as a deployment has.
				certFile, keyFile := writeChain(t, tc.brokerKey, tc.brokerCert)
				b := mosquittotest.Start(t, mosquittotest.Options{AllowAnonymous: true, Config: fmt.Sprintf("certfile %s\nkeyfile %s\n", certFile, keyFile)})
				_, port, _ := strings.Cut(b.Addr(), ":")
				// The controller's MQTT client handshakes with this config.
				conn, err := tls.Dial("tcp", "localhost:"+port, s.broker)
				if err != nil {
					t.Fatalf("the controller's TLS to its broker: %v\n%s", err, b.Log())
				}
				conn.Close()
			}
			renewed, renewedKey := issue(t, "loa.example.vn", false, root, rootKey)
			writePair(t, cfg.TLSCert, cfg.TLSKey, renewedKey, renewed)
			fc.Advance(certCheckEvery)
			got, err := s.server.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Certificate[0], renewed.Raw) {
				t.Fatalf("the renewed certificate is not served:\n%s", logs.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, logs.String())
				}
			}
			for _, not := range tc.not {
				if strings.Contains(logs.String(), not) {
					t.Errorf("the log says %q:\n%s", not, logs.String())
				}
			}
		})
	}
}

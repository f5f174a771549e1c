package e2e

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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// into dir and returns the cert and key file names and the certificate PEM.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile, certPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, []byte(certPEM), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile, certPEM
}

// With --tls-cert and --tls-key the controller serves HTTPS and MQTTS; a
// node verifies both against the certificate pinned in its credentials,
// and one pinned to another certificate (a man in the middle's view)
// refuses to talk.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, certPEM := selfSigned(t, dir, "loa-controller")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := rig.StartControllerWith(t, rig.ControllerOptions{
		Configure: func(cfg *app.Config) { cfg.TLSCert, cfg.TLSKey = certFile, keyFile },
		Client:    client,
	})
	if !strings.HasPrefix(c.URL, "https://") {
		t.Fatalf("controller URL %s, want https", c.URL)
	}
	// Plain HTTP to the TLS port gets no API.
	if resp, err := http.Get("http://" + strings.TrimPrefix(c.URL, "https://") + "/api/v1/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the TLS port")
		}
	}

	c.CreateArea("31", "Thành phố Hải Phòng", "")
	creds := c.CreateNode("tls-01", "31")
	if !strings.HasPrefix(creds.Broker, "ssl://") || !strings.HasPrefix(creds.Controller, "https://") || creds.ControllerCA != certPEM {
		t.Fatalf("credentials broker %s controller %s, pinned CA set: %v", creds.Broker, creds.Controller, creds.ControllerCA == certPEM)
	}
	n := rig.StartNode(t, creds, rig.NodeOptions{})
	rig.Eventually(t, 20*time.Second, "node online over MQTTS", func() bool { return c.Node("tls-01").Status.State == loaxa.NodeOnline })
	ct := c.Upload("tls.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
	ann := c.Announce(ct.ID, []string{"31"}, nil, time.Now().Add(time.Hour))
	rig.Eventually(t, 20*time.Second, "node got its schedule and fetched the audio over HTTPS", func() bool {
		ds := c.Deliveries(ann.ID)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryReceived && len(n.Agent.Status().ContentMissing) == 0
	})

	// A board pinned to another certificate (what it would see if someone
	// stood between it and the controller) neither measures time nor
	// connects.
	_, _, otherPEM := selfSigned(t, dir, "mitm")
	fooled := c.CreateNode("tls-02", "31")
	fooled.ControllerCA = otherPEM
	m := rig.StartNode(t, fooled, rig.NodeOptions{})
	if _, _, err := m.Agent.MeasureOffset(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("time from a controller with an unpinned certificate: %v", err)
	}
	if m.Agent.Connected() || c.Node("tls-02").Status.State == loaxa.NodeOnline {
		t.Error("a node connected through a certificate it does not pin")
	}
	if err := (&protocol.Credentials{ControllerCA: "not PEM"}).Validate(); err == nil || !strings.Contains(err.Error(), "controller_ca") {
		t.Errorf("credentials with a broken controller_ca: %v", err)
	}
}

package protocol

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Credentials is the document a board needs to join: who it is, where the
// controller and broker are, its own broker secret and the controller keys
// it trusts. The controller shows it once, when the node is created.
type Credentials struct {
	Node  string   `json:"node"`
	Area  string   `json:"area"`
	Areas []string `json:"areas"` // Area then its ancestors, until the first desired state says otherwise
	// Controller is the HTTP base URL, e.g. http://10.0.0.2:8080.
	Controller string `json:"controller"`
	// Broker is the MQTT URL, e.g. tcp://10.0.0.2:1883 or ssl://….
	Broker      string      `json:"broker"`
	Username    string      `json:"username"`
	Secret      string      `json:"secret"`
	TopicPrefix string      `json:"topic_prefix"`
	Keys        []PublicKey `json:"controller_keys"`
	// ControllerCA is PEM: the certificate(s) the node trusts for the
	// controller's HTTPS and MQTTS, instead of the system's roots. Empty
	// means the system's roots (or plain tcp:// and http://).
	ControllerCA string `json:"controller_ca,omitempty"`
}

// ReadCredentials loads and validates a credentials document.
func ReadCredentials(path string) (*Credentials, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("credentials %s: not a loaxa credentials document (JSON): %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	return &c, nil
}

// WriteCredentials writes c to path, readable by its owner only (it holds
// the node's secret), replacing any file there in one step: a crash leaves
// the old document or the new one, never half of one.
func WriteCredentials(path string, c *Credentials) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	_, werr := tmp.Write(append(raw, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// Validate checks that every field a node needs is present and well formed.
func (c *Credentials) Validate() error {
	var errs []error
	if err := CheckID(c.Node); err != nil {
		errs = append(errs, fmt.Errorf("node: %w", err))
	}
	if err := CheckID(c.Area); err != nil {
		errs = append(errs, fmt.Errorf("area: %w", err))
	}
	for _, a := range c.Areas {
		if err := CheckID(a); err != nil {
			errs = append(errs, fmt.Errorf("areas: %w", err))
		}
	}
	if u, err := url.Parse(c.Controller); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("controller %q: want an http:// or https:// URL", c.Controller))
	}
	if u, err := url.Parse(c.Broker); err != nil || u.Host == "" || !brokerSchemes[u.Scheme] {
		errs = append(errs, fmt.Errorf("broker %q: want a URL like tcp://host:1883", c.Broker))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("username: required"))
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("secret: required"))
	}
	// The prefix starts every topic the node subscribes to; a wildcard in it
	// would widen those subscriptions.
	if strings.ContainsAny(c.TopicPrefix, "+#\x00") || !utf8.ValidString(c.TopicPrefix) {
		errs = append(errs, fmt.Errorf("topic_prefix %q: no MQTT wildcards '+' or '#', NUL or invalid UTF-8", c.TopicPrefix))
	}
	if len(c.Keys) == 0 {
		errs = append(errs, errors.New("controller_keys: at least one controller public key is required"))
	}
	for _, k := range c.Keys {
		if _, err := k.Parse(); err != nil {
			errs = append(errs, fmt.Errorf("controller_keys: %w", err))
		}
	}
	if c.ControllerCA != "" {
		if _, err := c.CertPool(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var brokerSchemes = map[string]bool{"tcp": true, "ssl": true, "tls": true, "mqtt": true, "mqtts": true, "ws": true, "wss": true}

// PublicKeys returns the parsed controller keys.
func (c *Credentials) PublicKeys() ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, 0, len(c.Keys))
	for _, k := range c.Keys {
		pub, err := k.Parse()
		if err != nil {
			return nil, err
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// CertPool returns the pinned controller certificates as a pool, or nil if
// none are pinned (use the system's roots).
func (c *Credentials) CertPool() (*x509.CertPool, error) {
	if c.ControllerCA == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	rest, n := []byte(c.ControllerCA), 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("controller_ca: %w", err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("controller_ca: no PEM certificate in it")
	}
	return pool, nil
}

// TLSConfig returns the TLS settings for reaching the controller and the
// broker: the pinned certificates as the only roots, or the system's.
func (c *Credentials) TLSConfig() (*tls.Config, error) {
	pool, err := c.CertPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Prefix returns the topic prefix, defaulted.
func (c *Credentials) Prefix() string {
	if c.TopicPrefix == "" {
		return DefaultPrefix
	}
	return c.TopicPrefix
}

package protocol_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

func TestCredentialsValidate(t *testing.T) {
	badKey := protocol.NewPublicKey(prototest.PublicKey())
	badKey.ID = "0000000000000000"
	tests := []struct {
		name    string
		change  func(c *protocol.Credentials)
		wantErr []string // substrings that must all appear; none means valid
	}{
		{"valid", func(*protocol.Credentials) {}, nil},
		{"https and ssl", func(c *protocol.Credentials) {
			c.Controller, c.Broker = "https://loa.example.vn", "ssl://mqtt.example.vn:8883"
		}, nil},
		{"websocket broker", func(c *protocol.Credentials) { c.Broker = "wss://mqtt.example.vn/mqtt" }, nil},
		{"custom prefix", func(c *protocol.Credentials) { c.TopicPrefix = "hp/loa/v1" }, nil},
		{"no areas", func(c *protocol.Credentials) { c.Areas = nil }, nil},

		{"no node", func(c *protocol.Credentials) { c.Node = "" }, []string{"node: id is empty"}},
		{"bad node", func(c *protocol.Credentials) { c.Node = "N1" }, []string{"node: id \"N1\""}},
		{"no area", func(c *protocol.Credentials) { c.Area = "" }, []string{"area: id is empty"}},
		{"bad ancestor", func(c *protocol.Credentials) { c.Areas = append(c.Areas, "a/b") }, []string{"areas: id \"a/b\""}},
		{"no controller", func(c *protocol.Credentials) { c.Controller = "" }, []string{`controller "": want an http:// or https:// URL`}},
		{"controller not http", func(c *protocol.Credentials) { c.Controller = "ftp://10.0.0.2" }, []string{`controller "ftp://10.0.0.2"`}},
		{"controller without host", func(c *protocol.Credentials) { c.Controller = "http://" }, []string{`controller "http://"`}},
		{"controller unparsable", func(c *protocol.Credentials) { c.Controller = "http://[::1" }, []string{`controller "http://[::1"`}},
		{"no broker", func(c *protocol.Credentials) { c.Broker = "" }, []string{`broker "": want a URL like tcp://host:1883`}},
		{"broker http", func(c *protocol.Credentials) { c.Broker = "http://10.0.0.2:1883" }, []string{`broker "http://10.0.0.2:1883"`}},
		{"broker host only", func(c *protocol.Credentials) { c.Broker = "10.0.0.2:1883" }, []string{`broker "10.0.0.2:1883"`}},
		{"no username", func(c *protocol.Credentials) { c.Username = "" }, []string{"username: required"}},
		{"no secret", func(c *protocol.Credentials) { c.Secret = "" }, []string{"secret: required"}},
		{"no keys", func(c *protocol.Credentials) { c.Keys = nil }, []string{"controller_keys: at least one"}},
		{"bad key", func(c *protocol.Credentials) { c.Keys = append(c.Keys, badKey) }, []string{"controller_keys: public key 0000000000000000: key id does not match"}},
		{"wildcard prefix", func(c *protocol.Credentials) { c.TopicPrefix = "loa/#" }, []string{`topic_prefix "loa/#"`}},
		{"plus prefix", func(c *protocol.Credentials) { c.TopicPrefix = "+/v1" }, []string{`topic_prefix "+/v1"`}},
		{"everything missing", func(c *protocol.Credentials) { *c = protocol.Credentials{} },
			[]string{"node:", "area:", "controller", "broker", "username", "secret", "controller_keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := prototest.Credentials()
			tt.change(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
				}
			}
		})
	}
}

func TestCredentialsDefaults(t *testing.T) {
	c := prototest.Credentials()
	if got := c.Prefix(); got != protocol.DefaultPrefix {
		t.Errorf("Prefix() = %q, want the default", got)
	}
	c.TopicPrefix = "hp/loa"
	if got := c.Prefix(); got != "hp/loa" {
		t.Errorf("Prefix() = %q", got)
	}
	keys, err := c.PublicKeys()
	if err != nil || len(keys) != 1 || !keys[0].Equal(prototest.PublicKey()) {
		t.Errorf("PublicKeys() = %v, %v", keys, err)
	}
	c.Keys = append(c.Keys, protocol.PublicKey{ID: "x", Key: "!"})
	if _, err := c.PublicKeys(); err == nil {
		t.Error("PublicKeys() accepted a bad key")
	}
}

func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	want := prototest.Credentials()
	good, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		got, err := protocol.ReadCredentials(write("good.json", good))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("ReadCredentials = %+v, want %+v", *got, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := protocol.ReadCredentials(filepath.Join(dir, "nope.json"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		path := write("bad.json", []byte("node = n1\n"))
		_, err := protocol.ReadCredentials(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a loaxa credentials document") {
			t.Errorf("err = %v, want it to name the file and say what it is not", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		path := write("nosecret.json", []byte(strings.Replace(string(good), `"prototest-secret"`, `""`, 1)))
		_, err := protocol.ReadCredentials(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "secret: required") {
			t.Errorf("err = %v, want it to name the file and the missing secret", err)
		}
	})
}

func TestPublicKeyParse(t *testing.T) {
	pub := prototest.PublicKey()
	good := protocol.NewPublicKey(pub)
	short := protocol.PublicKey{ID: good.ID, Key: base64.StdEncoding.EncodeToString(pub[:31])}
	tests := []struct {
		name    string
		key     protocol.PublicKey
		wantErr string
	}{
		{"valid", good, ""},
		{"not base64", protocol.PublicKey{ID: good.ID, Key: "not base64!"}, "not base64"},
		{"url-safe alphabet", protocol.PublicKey{ID: good.ID, Key: base64.URLEncoding.EncodeToString(bytesWith(pub, 0xfb))}, "not base64"},
		{"unpadded", protocol.PublicKey{ID: good.ID, Key: strings.TrimRight(good.Key, "=")}, "not base64"},
		{"empty", protocol.PublicKey{}, "0 bytes, want 32"},
		{"short", short, "31 bytes, want 32"},
		{"kid mismatch", protocol.PublicKey{ID: protocol.KeyID(prototest.UntrustedKey().Public().(ed25519.PublicKey)), Key: good.Key}, "key id does not match"},
	}
	for _, tt := range tests {
		got, err := tt.key.Parse()
		if tt.wantErr == "" {
			if err != nil || !got.Equal(pub) {
				t.Errorf("%s: Parse() = %x, %v", tt.name, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Parse() = %x, %v; want an error containing %q", tt.name, got, err, tt.wantErr)
		}
	}
}

// bytesWith returns 32 bytes whose standard base64 needs '+' or '/', so the
// URL-safe encoding differs from it.
func bytesWith(pub ed25519.PublicKey, b byte) []byte {
	out := append([]byte(nil), pub...)
	out[0] = b
	return out
}

func FuzzReadCredentials(f *testing.F) {
	good, err := json.Marshal(prototest.Credentials())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"node":"n1","controller_keys":[{"kid":"x","key":"!!"}]}`))
	f.Add([]byte(`null`))
	pinned := prototest.Credentials()
	pinned.ControllerCA = testCA
	if good, err = json.Marshal(pinned); err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	path := filepath.Join(f.TempDir(), "credentials.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := protocol.ReadCredentials(path)
		if err != nil {
			if c != nil {
				t.Fatalf("ReadCredentials returned %+v with %v", c, err)
			}
			return
		}
		// What a node relies on after a successful read.
		if err := protocol.CheckID(c.Node); err != nil {
			t.Fatalf("accepted node %q: %v", c.Node, err)
		}
		keys, err := c.PublicKeys()
		if err != nil || len(keys) == 0 {
			t.Fatalf("accepted keys %+v: %v", c.Keys, err)
		}
		if c.Username == "" || c.Secret == "" {
			t.Fatalf("accepted empty broker credentials")
		}
		if cfg, err := c.TLSConfig(); err != nil || (c.ControllerCA != "") != (cfg.RootCAs != nil) {
			t.Fatalf("accepted controller_ca %q: %v", c.ControllerCA, err)
		}
		if strings.ContainsAny(c.Prefix(), "+#") {
			t.Fatalf("accepted topic prefix %q", c.Prefix())
		}
		if _, err := protocol.NewTopics(c.Prefix()).Parse(protocol.NewTopics(c.Prefix()).Node(c.Node, protocol.ChanCmd)); err != nil {
			t.Fatalf("the node's own cmd topic does not parse: %v", err)
		}
	})
}

// testCA is a self-signed certificate, as a controller pins it.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUDtSvvflRbF/dUgrFrOpoV49TdIwwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwObG9hLWNvbnRyb2xsZXIwHhcNMjYxMTI4MDQzMTU2WhcNMzYx
MTI1MDQzMTU2WjAZMRcwFQYDVQQDDA5sb2EtY29udHJvbGxlcjBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABOVETeML7ZQYCbGIljsfjcUyn89HDss78bUr4xifhKTv
qv9IbYVzZQhgT1zm2W5Afg+A8ihnOGYgJv9PjgX6Je2jUzBRMB0GA1UdDgQWBBQ8
puWLY/jcXfJK7xdFkCJh6B3ycDAfBgNVHSMEGDAWgBQ8puWLY/jcXfJK7xdFkCJh
6B3ycDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIDXk5kzNTood
9d86pP3GuAB0DbFxx3/xq76ChRfdrvigAiEAvvyfjwxN0wXhC/NHFAOJV6dghu36
R6Omq6LyyZ5JLa8=
-----END CERTIFICATE-----
`

func TestCredentialsCertPool(t *testing.T) {
	c := prototest.Credentials()
	if cfg, err := c.TLSConfig(); err != nil || cfg.RootCAs != nil {
		t.Errorf("no pin: %v, %v; want the system roots", cfg, err)
	}
	c.ControllerCA = testCA
	if cfg, err := c.TLSConfig(); err != nil || cfg.RootCAs == nil || c.Validate() != nil {
		t.Errorf("pinned: %v, %v", cfg, err)
	}
	for _, bad := range []string{"not PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", strings.Replace(testCA, "CERTIFICATE", "PRIVATE KEY", 2)} {
		c.ControllerCA = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "controller_ca") {
			t.Errorf("controller_ca %q: %v", bad, err)
		}
	}
}

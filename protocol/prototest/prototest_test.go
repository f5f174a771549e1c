package prototest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

var update = flag.Bool("update", false, "rewrite testdata/catalogue.golden from the current catalogue")

// TestCatalogueGolden pins the wire bytes of every fixture: a change to the
// envelope encoding, the signed layout or a body shows up here as a diff to
// review, not in the field as a fleet that refuses the controller.
func TestCatalogueGolden(t *testing.T) {
	var b bytes.Buffer
	for _, f := range prototest.Catalogue() {
		want := "accepted"
		if f.Want != nil {
			want = protocol.Reason(f.Want)
		}
		fmt.Fprintf(&b, "## %s %s %s\n", f.Name, f.Topic, want)
		if len(f.Raw) > 4096 {
			fmt.Fprintf(&b, "%d bytes, sha256 %x\n", len(f.Raw), sha256.Sum256(f.Raw))
			continue
		}
		b.Write(f.Raw)
		b.WriteString("\n")
	}
	path := filepath.Join("testdata", "catalogue.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol/prototest -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("catalogue bytes differ from %s; if the wire format change is intended, run go test ./protocol/prototest -update and review the diff", path)
	}
}

func TestCatalogueIsDeterministicAndFresh(t *testing.T) {
	a, b := prototest.Catalogue(), prototest.Catalogue()
	if len(a) != len(b) {
		t.Fatalf("two calls gave %d and %d fixtures", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Raw, b[i].Raw) {
			t.Errorf("fixture %d: %s differs between calls", i, a[i].Name)
		}
	}
	a[0].Raw[0] ^= 0xff
	if c := prototest.Catalogue(); c[0].Raw[0] == a[0].Raw[0] {
		t.Error("changing a returned fixture changed the next catalogue")
	}
}

func TestCatalogueShape(t *testing.T) {
	topics := protocol.NewTopics("")
	names := map[string]bool{}
	seqs := map[uint64]string{}
	for _, f := range prototest.Catalogue() {
		if names[f.Name] {
			t.Errorf("fixture name %q repeated", f.Name)
		}
		names[f.Name] = true
		if _, err := topics.Parse(f.Topic); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		if (f.Want == nil) == (f.Decoded == nil) {
			t.Errorf("%s: want exactly one of Want (%v) and Decoded (%v)", f.Name, f.Want, f.Decoded)
		}
		if f.Want != nil && protocol.Reason(f.Want) == "other" {
			t.Errorf("%s: Want %v is not a protocol sentinel", f.Name, f.Want)
		}
		if f.Want == nil {
			env, err := protocol.Parse(f.Raw)
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			if other, dup := seqs[env.Seq]; dup && env.KeyID != "" {
				t.Errorf("%s and %s share seq %d", f.Name, other, env.Seq)
			}
			if env.KeyID != "" {
				seqs[env.Seq] = f.Name
			}
		}
	}
	for _, want := range []string{"desired", "cmd/ack", "state/online", "state/offline-will", "events/batch"} {
		if !names[want] {
			t.Errorf("no fixture %q", want)
		}
	}
}

// TestSigningBytesMatchesProtocol checks prototest's independent reading of
// the signed layout against protocol's: Ed25519 is deterministic, so
// re-signing what Seal produced must give back the very same bytes.
func TestSigningBytesMatchesProtocol(t *testing.T) {
	s := prototest.Signer(prototest.Now)
	for _, body := range []any{prototest.Ack(), prototest.Desired(), map[string]string{"<html>": "&"}} {
		raw, err := s.Seal(protocol.TypeCommand, "node/"+prototest.Node, body, protocol.MaxTTL)
		if err != nil {
			t.Fatal(err)
		}
		if again := prototest.Reseal(prototest.Unmarshal(raw), prototest.Key()); !bytes.Equal(again, raw) {
			t.Errorf("Reseal gave\n%s\nSeal gave\n%s", again, raw)
		}
	}
}

func TestHelpers(t *testing.T) {
	c := prototest.Credentials()
	if err := c.Validate(); err != nil {
		t.Errorf("Credentials: %v", err)
	}
	raw, err := prototest.Signer(prototest.Now).Seal(protocol.TypeCommand, "node/x", prototest.Ack(), protocol.DefaultSkew)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prototest.Verifier(prototest.Now).Open(raw, "node/x"); err != nil {
		t.Errorf("Verifier refused what Signer sealed: %v", err)
	}
	if protocol.KeyID(prototest.PublicKey()) == protocol.KeyID(prototest.UntrustedKey().Public().(ed25519.PublicKey)) {
		t.Error("Key and UntrustedKey are the same")
	}
	if got := prototest.ByName("cmd/ack").Name; got != "cmd/ack" {
		t.Errorf("ByName(cmd/ack) = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("ByName of an unknown name did not panic")
		}
	}()
	prototest.ByName("no such fixture")
}

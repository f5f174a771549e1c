// Package prototest holds what tests of the wire contract share: a fixed
// controller key, a fixed clock instant, signers and verifiers built on
// them, and a catalogue of named raw payloads with what a receiver must make
// of each (catalogue.go). Controller, node and simulator tests use it so
// that they all speak, and refuse, exactly the same bytes.
//
// Nothing here is secret or random: the keys come from fixed seeds, so never
// use them outside tests.
package prototest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"loaxa.vn/protocol"
)

// Names used throughout the catalogue.
const (
	// Controller is the sender name of controller messages.
	Controller = "controller"
	// Node is the node every catalogue message is for or from.
	Node = "n-11311-01"
	// OtherNode is a second node, for messages that reach the wrong one.
	OtherNode = "n-11311-02"
	// Area is Node's commune.
	Area = "11311"
)

// Areas is Node's area followed by its ancestors (commune, district,
// province), as in its desired state and credentials.
var Areas = []string{Area, "303", "31"}

// now is 05:25 in Asia/Ho_Chi_Minh, five minutes before the morning session.
// It is in UTC so that times survive a JSON round trip unchanged for
// reflect.DeepEqual.
var now = time.Date(2025, time.March, 9, 22, 25, 0, 0, time.UTC)

// Now returns the fixed instant the catalogue is sealed at and meant to be
// opened at. It has the shape of a clock, so it can be passed as one.
func Now() time.Time { return now }

// At returns a clock stopped at t.
func At(t time.Time) func() time.Time { return func() time.Time { return t } }

// Key returns the controller's test signing key, derived from a fixed seed.
func Key() ed25519.PrivateKey { return keyFromPhrase("loaxa prototest controller key") }

// UntrustedKey returns a second fixed key that no prototest verifier trusts.
func UntrustedKey() ed25519.PrivateKey { return keyFromPhrase("loaxa prototest untrusted key") }

func keyFromPhrase(phrase string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(phrase))
	return ed25519.NewKeyFromSeed(seed[:])
}

// PublicKey returns the public half of Key.
func PublicKey() ed25519.PublicKey { return Key().Public().(ed25519.PublicKey) }

// Signer returns a signer for Controller with Key on clock now. Its first
// sequence number is now in Unix microseconds plus one.
func Signer(now func() time.Time) *protocol.Signer {
	return protocol.NewSigner(Controller, Key(), 0, now)
}

// Verifier returns a verifier that trusts Key on clock now, with
// protocol.DefaultSkew.
func Verifier(now func() time.Time) *protocol.Verifier {
	return protocol.NewVerifier([]ed25519.PublicKey{PublicKey()}, now, 0)
}

// Credentials returns a valid credentials document for Node that trusts
// Key. The URLs are placeholders; tests point them at their own servers.
func Credentials() protocol.Credentials {
	return protocol.Credentials{
		Node:       Node,
		Area:       Area,
		Areas:      append([]string(nil), Areas...),
		Controller: "http://127.0.0.1:8080",
		Broker:     "tcp://127.0.0.1:1883",
		Username:   Node,
		Secret:     "prototest-secret",
		Keys:       []protocol.PublicKey{protocol.NewPublicKey(PublicKey())},
	}
}

// SigningBytes returns what an envelope's signature covers, written from the
// spec in package protocol's doc independently of its implementation, so
// that a change to the signed layout shows up as a failing test instead of
// a fleet that refuses every command.
func SigningBytes(env *protocol.Envelope) []byte {
	var b bytes.Buffer
	b.WriteString("loaxa envelope signature v1\x00")
	num := func(v uint64) { b.Write(binary.BigEndian.AppendUint64(nil, v)) }
	field := func(p []byte) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		b.Write(p)
	}
	num(uint64(env.V))
	field([]byte(env.Type))
	field([]byte(env.From))
	field([]byte(env.KeyID))
	field([]byte(env.To))
	num(env.Seq)
	num(uint64(env.Issued))
	num(uint64(env.Expires))
	field(env.Body)
	return b.Bytes()
}

// Reseal signs env as it stands with key (setting KeyID and Sig) and returns
// its wire bytes. Unlike Signer.Seal it checks nothing, so tests can craft
// messages that are validly signed and wrong in one chosen way.
func Reseal(env protocol.Envelope, key ed25519.PrivateKey) []byte {
	env.KeyID = protocol.KeyID(key.Public().(ed25519.PublicKey))
	env.Sig = ed25519.Sign(key, SigningBytes(&env))
	return Marshal(env)
}

// Marshal returns the wire bytes of env without touching its signature.
func Marshal(env protocol.Envelope) []byte {
	raw, err := json.Marshal(&env)
	if err != nil {
		panic(fmt.Sprintf("prototest: marshal envelope: %v", err))
	}
	return raw
}

// Unmarshal decodes wire bytes known to be a well-formed envelope, as the
// catalogue's do; it panics otherwise.
func Unmarshal(raw []byte) protocol.Envelope {
	var env protocol.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		panic(fmt.Sprintf("prototest: unmarshal envelope: %v", err))
	}
	return env
}

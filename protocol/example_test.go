package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"loaxa.vn/protocol"
)

// A controller seals a command for one node; the node opens it, checks it
// is not a replay, and acts on it. The key and the clock are fixed here so
// the output is stable; real ones come from the controller's key file and
// the node's controller-corrected clock.
func Example() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	now := func() time.Time { return time.Date(2025, time.March, 9, 22, 25, 0, 0, time.UTC) }

	// Controller.
	signer := protocol.NewSigner("controller", key, 0, now)
	to := protocol.Topic{Scope: protocol.ScopeNode, ID: "n-11311-01"}.Audience()
	ack := protocol.Command{Name: protocol.CmdAck, Epoch: "e-7d1c", Seq: 43}
	raw, err := signer.Seal(protocol.TypeCommand, to, ack, 10*time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Node: it trusts the key from its credentials and remembers what it
	// accepted.
	verifier := protocol.NewVerifier([]ed25519.PublicKey{signer.PublicKey()}, now, 0)
	guard := protocol.NewReplayGuard(nil)
	receive := func(raw []byte, audience string) {
		env, err := verifier.Open(raw, audience)
		if err != nil {
			fmt.Println("refused:", protocol.Reason(err))
			return
		}
		if _, err := guard.Check(env, now()); err != nil {
			fmt.Println("refused:", protocol.Reason(err), errors.Is(err, protocol.ErrReplay))
			return
		}
		var cmd protocol.Command
		if err := env.Decode(&cmd); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s from %s, seq %d: %s epoch %s seq %d\n", env.Type, env.From, env.Seq, cmd.Name, cmd.Epoch, cmd.Seq)
	}
	receive(raw, to)
	receive(raw, to)                // the same bytes again, as a replaying attacker sends them
	receive(raw, "node/n-11311-02") // re-published on another node's topic
	// Output:
	// cmd from controller, seq 1741559100000001: ack epoch e-7d1c seq 43
	// refused: replay true
	// refused: wrong_audience
}

func ExampleTopics() {
	topics := protocol.NewTopics("") // the default prefix, loa/v1
	fmt.Println(topics.Node("n-11311-01", protocol.ChanDesired))
	fmt.Println(topics.Area("31", protocol.ChanCmd))
	fmt.Println(topics.AllNodes(protocol.ChanEvent))

	tp, err := topics.Parse("loa/v1/node/n-11311-01/event")
	fmt.Println(tp.Scope, tp.ID, tp.Channel, tp.Audience(), err)
	_, err = topics.Parse("loa/v1/node/+/cmd")
	fmt.Println(err)
	// Output:
	// loa/v1/node/n-11311-01/desired
	// loa/v1/area/31/cmd
	// loa/v1/node/+/event
	// node n-11311-01 event node/n-11311-01 <nil>
	// topic "loa/v1/node/+/cmd": id "+" has "+" at position 0: use lower-case letters a-z, digits, and '-', '_' or '.' after the first character
}

func ExampleReason() {
	verifier := protocol.NewVerifier(nil, nil, 0)
	for _, raw := range []string{
		`{"v":1,"type":"cmd"`,
		`{"v":2,"type":"cmd","from":"controller","to":"node/n1","body":{}}`,
		`{"v":1,"type":"cmd","from":"controller","to":"node/n1","body":{"name":"ack"}}`,
	} {
		_, err := verifier.Open([]byte(raw), "node/n1")
		fmt.Printf("%s: %v\n", protocol.Reason(err), err)
	}
	fmt.Println(protocol.Reason(errors.New("disk full")))
	// Output:
	// malformed: malformed message: unexpected EOF
	// version: unsupported protocol version: v=2, this build speaks v=1
	// unsigned: message not signed: cmd from controller
	// other
}

func ExampleCheckID() {
	for _, id := range []string{"n-11311-01", "xã-11311", "a/b"} {
		fmt.Println(protocol.CheckID(id))
	}
	// Output:
	// <nil>
	// id "xã-11311" has "ã" at position 1: use lower-case letters a-z, digits, and '-', '_' or '.' after the first character
	// id "a/b" has "/" at position 1: use lower-case letters a-z, digits, and '-', '_' or '.' after the first character
}

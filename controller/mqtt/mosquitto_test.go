package mqtt_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/internal/mosquittotest"
)

// Every node reporting at once — 10,000 reconnecting after the broker
// restarted, or their retained states when the controller subscribes
// again — is a burst on the controller's one subscription. Mosquitto
// keeps max_inflight_messages of a client's QoS 1 messages unacknowledged
// and queues max_queued_messages more (1,000 by default); past that it
// drops them, so the controller would miss states until the heartbeats
// and events until the nodes send them again (30 s). The exported
// configuration queues a province's burst: here a controller that takes
// no message until 5,000 were published gets every one.
func TestMosquittoConfQueuesABurstForTheController(t *testing.T) {
	const burst = 5000
	for _, retained := range []bool{false, true} {
		t.Run(fmt.Sprintf("retained=%t", retained), func(t *testing.T) {
			b := mosquittotest.Start(t, mosquittotest.Options{
				Users: map[string]string{mqtt.ControllerUsername: "c-secret", "nodes": "n-secret"},
				ACL: "user " + mqtt.ControllerUsername + "\ntopic readwrite loa/v1/#\n\n" +
					"user nodes\ntopic write loa/v1/#\n",
				Config: mosquittotest.Installed(t, mqtt.MosquittoConf),
			})
			connect := func(user, pass string) paho.Client {
				c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).
					SetClientID(user).SetUsername(user).SetPassword(pass).
					SetCleanSession(true).SetOrderMatters(true))
				if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("connect %s: %v", user, tok.Error())
				}
				t.Cleanup(func() { c.Disconnect(0) })
				return c
			}
			nodes := connect("nodes", "n-secret")
			publish := func(topic, payload string, retain bool) paho.Token {
				return nodes.Publish(topic, 1, retain, payload)
			}
			publishBurst := func() {
				toks := make([]paho.Token, burst)
				for i := range toks {
					toks[i] = publish(fmt.Sprintf("loa/v1/node/n%05d/state", i), "state", retained)
				}
				for i, tok := range toks {
					if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						t.Fatalf("publish %d: %v", i, tok.Error())
					}
				}
			}

			release := make(chan struct{})
			end := make(chan struct{})
			var got, ends atomic.Int64
			ctl := connect(mqtt.ControllerUsername, "c-secret")
			if retained {
				publishBurst() // before the controller subscribes
			}
			// Paho acknowledges a message when its handler returns
			// (order matters): held here, the controller takes nothing
			// more and Mosquitto queues the rest.
			sub := ctl.Subscribe("loa/v1/node/+/state", 1, func(_ paho.Client, m paho.Message) {
				<-release
				if string(m.Payload()) == "end" {
					if ends.Add(1) == 1 {
						close(end)
					}
					return
				}
				got.Add(1)
			})
			if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
				t.Fatalf("subscribe: %v", sub.Error())
			}
			if !retained {
				publishBurst()
			}
			close(release)
			// Queued behind the burst, the end marker arrives after it;
			// sent again until it does, in case it was dropped too.
			deadline := time.After(30 * time.Second)
			for done := false; !done; {
				publish("loa/v1/node/end/state", "end", false)
				select {
				case <-end:
					done = true
				case <-time.After(200 * time.Millisecond): // until the end marker gets through
				case <-deadline:
					t.Fatalf("the end marker never reached the controller; %d of %d states did", got.Load(), burst)
				}
			}
			if n := got.Load(); n != burst {
				t.Errorf("the controller got %d of %d states of the burst", n, burst)
			}
			if strings.Contains(b.Log(), "being dropped") {
				t.Errorf("mosquitto dropped messages:\n%s", grepLines(b.Log(), "dropped"))
			}
		})
	}
}

// A technician created a node named "loaxa-controller-pub", the
// controller's publishing account in the exported files. Mosquitto took
// the node's password line (the last) and merged the two ACL sections: the
// board could publish on every node's state and event topics (forged
// proof of broadcast, forged emergency reports) and overwrite retained
// desired states, and the controller's publishing account stopped
// working. The store refuses the default account names; the export
// refuses an active node under either of the controller's account names,
// whatever the controller's username, with an error naming the node, and
// once the node is revoked every account in the files is the one it says.
func TestExportRefusesANodeNamedLikeTheController(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_, sec := loaxa.NewNodeSecret()
	newNode := func(id string) *loaxa.Node {
		return &loaxa.Node{ID: id, Name: "cụm loa", Area: "12346", SecretHash: sec.Hash, BrokerHash: sec.BrokerHash}
	}
	if err := r.nodes.CreateNode(ctx, newNode(mqtt.ControllerUsername+mqtt.PublishUsernameSuffix)); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("creating node %q: %v, want %s", mqtt.ControllerUsername+mqtt.PublishUsernameSuffix, err, loaxa.EInvalid)
	}
	const user = "loaxa-hp" // a controller started with --broker tcp://loaxa-hp:PASSWORD@broker:1883
	for _, id := range []string{user, user + mqtt.PublishUsernameSuffix} {
		t.Run(id, func(t *testing.T) {
			if err := r.nodes.CreateNode(ctx, newNode(id)); err != nil {
				t.Fatal(err)
			}
			export := func() (*mqtt.MosquittoFiles, error) {
				return mqtt.ExportMosquitto(ctx, r.nodes, r.areas, topics, user, loaxa.HashBrokerSecret("controller-secret"))
			}
			files, err := export()
			if loaxa.ErrorCode(err) != loaxa.EConflict || !strings.Contains(loaxa.ErrorMessage(err), id) {
				t.Fatalf("export with active node %q: %v (files %v), want %s naming the node", id, err, files != nil, loaxa.EConflict)
			}
			if _, err := r.nodes.RevokeNode(ctx, id); err != nil {
				t.Fatal(err)
			}
			if files, err = export(); err != nil {
				t.Fatalf("export after revoking node %q: %v", id, err)
			}
			for _, u := range []string{user, user + mqtt.PublishUsernameSuffix} {
				if n := strings.Count("\n"+files.Passwd, "\n"+u+":"); n != 1 {
					t.Errorf("the password file has %d entries for %q:\n%s", n, u, files.Passwd)
				}
				if n := strings.Count(files.ACL, "\nuser "+u+"\n"); n != 1 {
					t.Errorf("the ACL file has %d sections for %q:\n%s", n, u, files.ACL)
				}
			}
		})
	}
}

func grepLines(s, word string) string {
	var out strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, word) {
			out.WriteString(line)
		}
	}
	return out.String()
}

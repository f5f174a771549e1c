package fleet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// awaitRestarts waits until the box has started its agent again n times.
func awaitRestarts(t *testing.T, s *Sim, n int, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Restarts() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the box started its agent again %d times in 10 s, want %d; agent stopped: %v", why, s.Restarts(), n, s.Err())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// TestCardChangedWhileTheBoxRestartsIsNotLost: a script made a box's SD
// card read-only and mended it at once (POST then DELETE
// /boards/{id}/faults/card-read-only). The DELETE landed while the box was
// making its new agent on the read-only card, and the box ran on a store in
// memory with storage-failed for good although its card was sound: what it
// played and the events it had not sent were lost at its next restart. The
// other way round, a card failing again while the box restarts on it
// mended, was missed the same way. A change of the card during a restart
// must start the agent again on what the card is now.
func TestCardChangedWhileTheBoxRestartsIsNotLost(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before []string // what the card went through, each waited for
		during string   // the change while the next agent is being made
		ro     bool     // the card at the end
	}{
		{"mended while restarting on it read-only", []string{"POST"}, "DELETE", false},
		{"read-only again while restarting on it mended", []string{"POST", "DELETE"}, "POST", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctl := newController(t, deadBroker(t))
			hold := int32(len(tt.before) + 1) // the agent made after the last change before
			var calls atomic.Int32
			entered, release := make(chan struct{}), make(chan struct{})
			tune := func(c *agent.Config) {
				fastAgents(c)
				if calls.Add(1) == hold {
					close(entered)
					<-release
				}
			}
			f, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: token, Nodes: 1, Area: "xa-an-lu", Prefix: "rr", Tune: tune})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			control := httptest.NewServer(f.Control())
			defer control.Close()
			fault := func(method string) {
				t.Helper()
				req, err := http.NewRequest(method, control.URL+"/boards/rr-0001/faults/"+board.FaultCardReadOnly, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s card-read-only: %d", method, resp.StatusCode)
				}
			}
			s := f.Sim("rr-0001")

			for i, method := range tt.before {
				fault(method)
				if i < len(tt.before)-1 {
					awaitRestarts(t, s, i+1, method+" card-read-only")
				}
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the box did not start its agent again on the changed card")
			}
			fault(tt.during)
			close(release)

			awaitRestarts(t, s, len(tt.before)+1, tt.during+" card-read-only while the box restarted")
			s.mu.Lock()
			roCard := s.roCard
			s.mu.Unlock()
			storageFault := s.Agent().Status().StorageFault
			if roCard != tt.ro || (storageFault != "") != tt.ro {
				t.Errorf("the box runs its agent as on a read-only card %v (storage fault %q); the card is read-only %v", roCard, storageFault, s.Board.CardReadOnly())
			}
		})
	}
}

// TestRebootCommandRestartsTheBox: a technician sent "reboot" to a
// simulated box (POST /api/v1/nodes/{id}/commands {"name":"reboot"}); the
// controller answered 202, and the box only logged "this board has no way
// to reboot" where the node program exits for systemd to start it again.
// The box must start its agent again, which reaches the broker again.
func TestRebootCommandRestartsTheBox(t *testing.T) {
	broker := mosquittotest.Start(t, mosquittotest.Options{AllowAnonymous: true})
	ctl := newController(t, broker.URL())
	f, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: token, Nodes: 1, Area: "xa-an-lu", Prefix: "rb", Tune: fastAgents})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := f.WaitConnected(context.Background(), 15*time.Second); n != 1 {
		t.Fatal("the box did not reach the broker")
	}
	s := f.Sim("rb-0001")
	before := s.Agent()

	raw, err := ctl.signer.Seal(protocol.TypeCommand, "node/"+s.ID, protocol.Command{Name: protocol.CmdReboot}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("technician"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	topic := protocol.NewTopics(protocol.DefaultPrefix).Node(s.ID, protocol.ChanCmd)
	if tok := c.Publish(topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish reboot: %v", tok.Error())
	}

	awaitRestarts(t, s, 1, "reboot command")
	if s.Agent() == before {
		t.Error("the box restarted but runs its old agent")
	}
	if n := f.WaitConnected(context.Background(), 15*time.Second); n != 1 || f.Running() != 1 {
		t.Errorf("after the reboot: %d of 1 agents connected, %d running; want the new agent on the broker", n, f.Running())
	}
}

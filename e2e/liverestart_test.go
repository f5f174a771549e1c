package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// powerCutStore is a node's store on a board whose power is cut at cut:
// nothing written after it is kept (the agent's own stop writes nothing).
type powerCutStore struct {
	agent.Store
	gone atomic.Bool
}

func (s *powerCutStore) cut() { s.gone.Store(true) }

func (s *powerCutStore) Append(events []protocol.Event, marks []agent.Progress) ([]protocol.Event, error) {
	if s.gone.Load() {
		return events, nil
	}
	return s.Store.Append(events, marks)
}

func (s *powerCutStore) SetHeldAlerts(h agent.HeldAlerts) error {
	if s.gone.Load() {
		return nil
	}
	return s.Store.SetHeldAlerts(h)
}

func (s *powerCutStore) Ack(epoch string, seq uint64) error {
	if s.gone.Load() {
		return nil
	}
	return s.Store.Ack(epoch, seq)
}

func (s *powerCutStore) AddReplay(e protocol.ReplayEntry, now time.Time) error {
	if s.gone.Load() {
		return nil
	}
	return s.Store.AddReplay(e, now)
}

func (s *powerCutStore) SetClockFloor(t time.Time) error {
	if s.gone.Load() {
		return nil
	}
	return s.Store.SetClockFloor(t)
}

// TestLiveCallRejoinedByANodeThatRestarts: a board restarted in the middle
// of an officer's typhoon call (its agent restarted by the service
// manager; a power blip, its link left half-open at the broker and
// nothing written after the cut): the node reported the call failed and,
// back, ignored the call's frames and the start the controller sent it
// again, silent for the rest of the call. Through the real controller,
// embedded broker and agent on its own store: the node must play the call
// again once back, and end it with the others when it is cut.
func TestLiveCallRejoinedByANodeThatRestarts(t *testing.T) {
	for _, tc := range []struct {
		name string
		blip bool
	}{
		{"agent restarted", false},
		{"power blip", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rig.StartController(t, "")
			c.CreateArea("31", "Thành phố Hải Phòng", "")
			c.CreateArea("12346", "Xã Tiên Thắng", "31")
			cr, dir := c.CreateNode("a1", "12346"), t.TempDir()
			broker := strings.TrimPrefix(c.App.Broker.URL(), "tcp://")
			link, err := netproxy.Start(broker)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { link.Close() }) // after the node stops
			var st *powerCutStore
			a1 := rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + link.Addr(), Dir: dir, Tune: func(c *agent.Config) {
				quickReconnect(c)
				st = &powerCutStore{Store: c.Store}
				c.Store = st
			}})
			rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })

			speaker := signInAs(t, c, "can-bo-phat", loaxa.RoleCommune, "12346")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speaker.Token, Areas: []string{"12346"}, Title: "Phòng chống bão"})
			if err != nil {
				t.Fatal(err)
			}
			streamed := make(chan error, 1)
			go func() { streamed <- call.Stream(ctx, bytes.NewReader(voicePCM(60*time.Second))) }()
			id := callOnAir(t, speaker)
			rig.Eventually(t, 10*time.Second, "a1 plays the call", func() bool { return playing(a1) == id })
			rig.Eventually(t, 10*time.Second, "a1's delivery started", func() bool {
				return liveReport(speaker, id).Nodes[0].State == string(loaxa.DeliveryStarted)
			})

			back := link
			if tc.blip {
				// The power goes: nothing more is written, and the
				// broker keeps the dead connection until the board's
				// new one takes its place.
				st.cut()
				link.Freeze()
				if back, err = netproxy.Start(broker); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { back.Close() })
			}
			a1.Stop(t)
			a1 = rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + back.Addr(), Dir: dir, Tune: quickReconnect})
			rig.Eventually(t, 20*time.Second, "a1, restarted, plays the call again", func() bool { return playing(a1) == id })
			rig.Eventually(t, 10*time.Second, "a1's delivery started again", func() bool {
				return liveReport(speaker, id).Nodes[0].State == string(loaxa.DeliveryStarted)
			})

			speaker.MustDo("POST", "/api/v1/live/calls/"+id+"/cut", nil, nil)
			if err := <-streamed; !errors.Is(err, liveclient.ErrEnded) {
				t.Errorf("the speaker's stream after the cut: %v, want ErrEnded", err)
			}
			rig.Eventually(t, 20*time.Second, "a1 completes the call, cut", func() bool {
				n := liveReport(speaker, id).Nodes[0]
				return n.State == string(loaxa.DeliveryCompleted) && n.Reason == protocol.ReasonCut
			})
			t.Logf("a1 after the call: %+v", liveReport(speaker, id).Nodes[0])
		})
	}
}

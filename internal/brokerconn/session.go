package brokerconn

import (
	"bytes"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// SessionGate is a mochi hook that lets a clean-session client in only
// after the previous connection with its client id has finished.
//
// mochi-mqtt (v2.7.9) handles each connection in its own goroutine. When a
// clean-session client goes away, that goroutine ends with
// "if not taken over: unsubscribe the client, delete its id from the
// client list". A board that reconnects at once (a flaky 4G link, an agent
// restart) can connect between that check and the delete: its new session
// is then deleted by id and the broker stops delivering to it, while the
// board believes it is subscribed — it would never hear an emergency. The
// gate closes that window: an authenticated connecting clean-session client whose id is
// still held by another connection disconnects that one (as MQTT's session
// takeover would) and waits until its goroutine has removed it, then goes
// on with an empty session, which is what a clean session asks for anyway.
type SessionGate struct {
	mochi.HookBase
	Server *mochi.Server
	// Wait bounds the wait for the old connection (default 10 s); after it
	// the new client goes on as mochi would without the gate.
	Wait time.Duration
}

// ID names the hook.
func (g *SessionGate) ID() string { return "loaxa-session-gate" }

// Provides says the hook handles OnSessionEstablish.
func (g *SessionGate) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnSessionEstablish}, []byte{b})
}

// OnSessionEstablish waits, for a clean-session client, until no other
// connection holds its client id. mochi calls it after the client has
// authenticated (a stranger cannot use it to kick a board off) and before
// it looks for the session to inherit.
func (g *SessionGate) OnSessionEstablish(cl *mochi.Client, pk packets.Packet) {
	if !pk.Connect.Clean {
		return // a persistent session is inherited by mochi's own takeover
	}
	old, ok := g.Server.Clients.Get(cl.ID)
	if !ok || old == cl || !old.Properties.Clean {
		return
	}
	if !old.Closed() {
		_ = g.Server.DisconnectClient(old, packets.ErrSessionTakenOver) // [MQTT-3.1.4-3]
	}
	wait := g.Wait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		cur, ok := g.Server.Clients.Get(cl.ID)
		if !ok || cur != old {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	g.Log.Warn("broker: the previous connection of a reconnecting client did not finish; going on", "client", cl.ID)
}

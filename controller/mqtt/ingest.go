package mqtt

import (
	"context"
	"fmt"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Observer hears what nodes report, after the ingest stored it: the health
// model (controller/health) is one. Calls for one node come in order, from
// one worker; calls for different nodes may be concurrent.
type Observer interface {
	ObserveState(ctx context.Context, node string, st *protocol.State, at time.Time)
	ObserveEvents(ctx context.Context, node, epoch string, events []protocol.Event)
	// ObserveSalvaged hears the events a node read back from its damaged
	// store (protocol.EventBatch.Salvaged), which can come more than once.
	ObserveSalvaged(ctx context.Context, node string, events []protocol.Event)
}

// openNodeMessage parses a node message, checks that it is what the topic
// says: the right type, from the node whose topic it is, and decodes its
// body into body. The broker already restricts each node to its own topics;
// this catches misconfigured external brokers and confused clients. The
// envelope and its body are decoded in one pass where that accepts the same
// (protocol.ParseBody): every node message of a round comes through here.
func openNodeMessage[T any](node string, typ protocol.Type, payload []byte, body *T) error {
	env, decoded, err := protocol.ParseBody[T](payload, typ)
	if err != nil {
		return err
	}
	if env.Type != typ {
		return fmt.Errorf("%w: %s message on the %s topic", protocol.ErrMalformed, env.Type, typ)
	}
	if env.From != node {
		return fmt.Errorf("%w: message from %q on the topic of node %q", protocol.ErrAudience, env.From, node)
	}
	if decoded != nil {
		*body = *decoded
		return nil
	}
	return env.Decode(body)
}

// checkActive refuses messages from a node whose credentials were revoked
// (or never issued). The embedded broker already refuses such a node; an
// external one does until its password file is regenerated. It runs for
// every node message, so it asks for the credential state only, not for a
// copy of the whole node.
func (c *Client) checkActive(ctx context.Context, node string) error {
	cred, err := c.NodeService.NodeCredentials(ctx, node)
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	if cred != loaxa.CredentialsActive {
		return fmt.Errorf("%w: node %s has %s credentials", protocol.ErrAudience, node, cred)
	}
	return nil
}

func (c *Client) ingestState(ctx context.Context, node string, payload []byte) error {
	if len(payload) == 0 {
		return nil // a cleared retained message
	}
	if err := c.checkActive(ctx, node); err != nil {
		return err
	}
	var st protocol.State
	if err := openNodeMessage(node, protocol.TypeState, payload, &st); err != nil {
		return err
	}
	now := c.Now()
	state := loaxa.NodeOffline
	if st.Status == protocol.StatusOnline {
		state = loaxa.NodeOnline
	}
	cameOnline := false
	err := c.NodeService.UpdateNodeStatus(ctx, node, func(s *loaxa.NodeStatus) {
		cameOnline = s.State != loaxa.NodeOnline && state == loaxa.NodeOnline
		if s.State != state {
			s.State = state
			s.Since = now
		}
		if st.Status != protocol.StatusOnline {
			// A Last Will carries nothing else; keep the last known details.
			// It is the broker's word, sent once the node's keep-alive ran
			// out (up to 45 s after its last packet), not contact from the
			// node: last_seen stays at the node's last message, which is
			// what a technician matches with a power cut.
			if s.LastSeen.IsZero() {
				s.LastSeen = now
			}
			s.Playing = nil
			return
		}
		s.LastSeen = now
		s.RunningVersion = st.DesiredVersion
		s.Agent = st.Agent
		s.Playing = st.Playing
		s.ClockOffsetMS, s.ClockUncertaintyUS = st.ClockOffsetMS, st.ClockUncertaintyUS
		s.ContentMissing = st.ContentMissing
		s.CacheBytes, s.CacheLimit = st.CacheBytes, st.CacheLimit
		s.Board = st.Board
		s.Rejected = st.Rejected
		s.Outbox = st.Outbox
		s.Keys = st.Keys
		s.HeartbeatMS, s.UptimeS, s.DiskFreeBytes, s.StorageDamaged = st.HeartbeatMS, st.UptimeS, st.DiskFreeBytes, st.StorageDamaged
		s.LinkDeaf, s.NoSoundDevice, s.StorageFault = st.LinkDeaf, st.NoSoundDevice, st.StorageFault
		s.AreasUnheard = st.AreasUnheard
		s.Volume, s.Muted, s.AmplifierPolicy = st.Volume, st.Muted, st.AmplifierPolicy
	})
	if err != nil {
		return err
	}
	if c.OnProbes != nil && st.Status == protocol.StatusOnline && len(st.ProbeReceipts) > 0 {
		c.OnProbes(node, st.ProbeReceipts)
	}
	if c.OnEpoch != nil && st.Status == protocol.StatusOnline && st.Epoch != "" {
		c.OnEpoch(node, st.Epoch)
	}
	if c.OnOnline != nil && cameOnline {
		c.OnOnline(node)
	}
	if c.Observer != nil {
		c.Observer.ObserveState(ctx, node, &st, now)
	}
	return nil
}

func (c *Client) ingestEvents(ctx context.Context, node string, payload []byte) error {
	if err := c.checkActive(ctx, node); err != nil {
		return err
	}
	var b protocol.EventBatch
	if err := openNodeMessage(node, protocol.TypeEvents, payload, &b); err != nil {
		return err
	}
	if b.Epoch == "" || len(b.Events) == 0 {
		return fmt.Errorf("%w: event batch without epoch or events", protocol.ErrMalformed)
	}
	for i := range b.Events {
		// RecordEvents stores a refusal in the place of such an event
		// and logs why, so that the node's outbox moves on.
		if b.Events[i].Validate() != nil {
			c.metrics().eventsRefused.Inc()
		}
	}
	ack, stored, err := c.EventService.RecordEvents(ctx, node, b, c.Now())
	if err != nil {
		return fmt.Errorf("record events of %s: %w", node, err)
	}
	if b.Salvaged {
		// Events of an earlier store of the node, read back after it was
		// damaged: what they say happened before anything the node
		// reports now, so only OnSalvaged hears of them. Acknowledged at
		// once, with their epoch: the held acknowledgement is the node's
		// own outbox's.
		c.Logger.Info("mqtt: events salvaged from a node's earlier store", "node", node, "epoch", b.Epoch,
			"from", b.Events[0].Seq, "to", b.Events[len(b.Events)-1].Seq, "stored_up_to", ack)
		if c.OnSalvaged != nil && len(stored) > 0 {
			c.OnSalvaged(node, stored)
		}
		if c.Observer != nil && len(stored) > 0 {
			c.Observer.ObserveSalvaged(ctx, node, stored)
		}
		if ack == 0 {
			return nil
		}
		return c.sendAck(ctx, node, b.Epoch, ack)
	}
	// Only what was stored now: events past a gap come again, and events
	// held already (a resend, a late copy of an earlier epoch's batch)
	// were heard when they were stored. Passed on again, a late copy of an
	// old failure reopened an alarm a later play had ended, and an old
	// epoch taken for the node's current one had a sounding alert taken
	// for lost.
	if c.OnEvents != nil && len(stored) > 0 {
		c.OnEvents(node, b.Epoch, stored)
	}
	if c.Observer != nil && len(stored) > 0 {
		c.Observer.ObserveEvents(ctx, node, b.Epoch, stored)
	}
	if first := b.Events[0].Seq; first > ack+1 {
		// A batch past a gap: the one before it was dropped (a full
		// ingest queue) or refused. Said at once, not held for AckDelay,
		// so that the node sends the gap again now: before, it waited its
		// whole AckTimeout (30 s), and an alert's receipt lost this way
		// was missing from the alert's report all that time.
		c.Logger.Info("mqtt: events came after a gap; the node is asked to send from it", "node", node, "epoch", b.Epoch,
			"stored_up_to", ack, "batch_from", first)
		return c.SendNodeCommand(ctx, node, protocol.Command{Name: protocol.CmdAck, Epoch: b.Epoch, Seq: ack, Gap: first}, AckTTL)
	}
	if ack == 0 {
		return nil
	}
	// Acknowledge even when the batch was a resend, so the node can drop
	// it; such a batch may also be a late copy of an old epoch's, which
	// must not take the place of the acknowledgement held for the node's
	// current outbox.
	return c.acknowledge(ctx, node, b.Epoch, ack, len(stored) > 0)
}

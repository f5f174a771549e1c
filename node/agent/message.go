package agent

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"loaxa.vn/node/mqtt"
	"loaxa.vn/protocol"
)

// handle acts on one message from the broker, if and only if the
// controller signed it for this node (or one of its areas), it is valid
// now, and it is not a copy of one already acted on. retry marks a second
// look at a desired state refused earlier for its validity times.
func (a *Agent) handle(m mqtt.Message, retry bool) {
	if len(m.Payload) == 0 && m.Topic == a.topics.Node(a.cred.Node, protocol.ChanDesired) {
		return // the retained desired state being cleared: keep running ours
	}
	if err := a.accept(m, retry); err != nil {
		if errors.Is(err, errHeld) {
			a.log.Info("agent: acknowledgement held until the clock is measured", "topic", m.Topic, "err", err)
			return
		}
		if retry {
			a.log.Debug("agent: desired state still refused", "topic", m.Topic, "reason", protocol.Reason(err), "err", err)
			return
		}
		a.mu.Lock()
		a.status.rejected++
		a.mu.Unlock()
		signal(a.dirty)
		a.log.Warn("agent: message refused", "topic", m.Topic, "reason", protocol.Reason(err), "err", err)
	}
}

// accept verifies m and acts on it; an error means it was refused.
func (a *Agent) accept(m mqtt.Message, retry bool) error {
	topic, err := a.topics.Parse(m.Topic)
	if err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
	}
	switch {
	case topic.Scope == protocol.ScopeNode && topic.ID != a.cred.Node:
		return fmt.Errorf("%w: topic of node %s", protocol.ErrAudience, topic.ID)
	case topic.Scope == protocol.ScopeArea && !slices.Contains(a.areas(), topic.ID):
		return fmt.Errorf("%w: area %s is not in this node's chain", protocol.ErrAudience, topic.ID)
	}
	env, err := a.verifier.Open(m.Payload, topic.Audience())
	if err != nil {
		if errors.Is(err, protocol.ErrExpired) && a.clockEstimate.Load() == nil && topic.Channel == protocol.ChanCmd {
			if cmd, ok := ackOf(m.Payload); ok {
				// A board whose clock is ahead would refuse every
				// acknowledgement until its first measurement, and send its
				// whole outbox again each AckTimeout: judged once measured.
				a.holdAck(m, cmd)
				return fmt.Errorf("%w: %w", errHeld, err)
			}
		}
		if errors.Is(err, protocol.ErrExpired) && !a.floored.IsZero() && a.clockEstimate.Load() == nil {
			err = fmt.Errorf("%w, by the time the controller last proved (%s): the board's clock is behind it and not measured yet",
				err, a.floored.UTC().Format(time.RFC3339))
		}
		if topic.Channel == protocol.ChanDesired && (errors.Is(err, protocol.ErrExpired) || errors.Is(err, protocol.ErrNotYetValid)) {
			// The retained copy will not come again; if our clock is what
			// is wrong, the next correction lets it through.
			a.stashed = &m
		}
		return err
	}
	// The controller's clock read at least its issue time.
	a.proved(env.IssuedAt())
	a.saveFloor(floorStep)
	switch topic.Channel {
	case protocol.ChanDesired:
		return a.acceptDesired(env)
	case protocol.ChanCmd:
		if env.Type == protocol.TypeLive && topic.Scope == protocol.ScopeNode {
			// A call's start or end sent again to this node alone: it
			// came online while the call was on air, or after its end.
			return a.acceptLive(env, true)
		}
		return a.acceptCommand(env)
	case protocol.ChanLive:
		return a.acceptLive(env, false)
	}
	return fmt.Errorf("%w: nothing to do with a message on %s", protocol.ErrMalformed, m.Topic)
}

// errHeld: a message kept for the clock's first measurement (holdAck),
// not refused.
var errHeld = errors.New("held until the clock is measured")

// maxHeldAcks bounds the acknowledgements held for the first measurement:
// the newest are kept, and a later one of an epoch covers the earlier.
const maxHeldAcks = 16

// holdAck keeps m, an acknowledgement that looks expired on the clock not
// measured yet, to be judged once it is (the main loop, on clockMoved).
// Its expiry is judged then as any message's is: a copy recorded long ago
// is refused, and one still valid by the controller's time is taken.
//
// Meanwhile the sender takes it as what it says (heldAcked): the controller
// signed that it stored this epoch's events up to cmd.Seq, and only its
// times are in doubt, which matter against replays. A replayed copy can
// claim no more than the controller once stored, so the events it covers
// are neither sent again nor counted in the window of events sent ahead,
// and a board that never measures (an older controller) still sends its
// new events. They stay in the outbox until the acknowledgement is judged.
func (a *Agent) holdAck(m mqtt.Message, cmd protocol.Command) {
	if len(a.heldAcks) >= maxHeldAcks {
		a.heldAcks = slices.Delete(a.heldAcks, 0, len(a.heldAcks)-maxHeldAcks+1)
	}
	a.heldAcks = append(a.heldAcks, m)
	if cmd.Epoch == a.epoch && cmd.Seq > a.heldAcked.Load() {
		a.heldAcked.Store(cmd.Seq)
		signal(a.outboxWake)
	}
}

// ackOf returns the acknowledgement of events raw is, a message whose
// signature verified and whose times did not, if it is one.
func ackOf(raw []byte) (protocol.Command, bool) {
	env, err := protocol.Parse(raw)
	if err != nil || env.Type != protocol.TypeCommand {
		return protocol.Command{}, false
	}
	var cmd protocol.Command
	return cmd, env.Decode(&cmd) == nil && cmd.Name == protocol.CmdAck
}

func (a *Agent) acceptDesired(env *protocol.Envelope) error {
	if env.Type != protocol.TypeDesired {
		return fmt.Errorf("%w: %s message on the desired topic", protocol.ErrMalformed, env.Type)
	}
	var d protocol.DesiredState
	if err := env.Decode(&d); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
	}
	if d.Node != a.cred.Node {
		return fmt.Errorf("%w: desired state for node %s", protocol.ErrAudience, d.Node)
	}
	for _, area := range d.Areas {
		if err := protocol.CheckID(area); err != nil {
			return fmt.Errorf("%w: desired state areas: %v", protocol.ErrMalformed, err)
		}
	}
	if a.desired != nil && d.Version <= a.desired.Version {
		// The retained copy of what runs, coming back on a reconnect.
		a.log.Debug("agent: desired state not newer", "version", d.Version, "running", a.desired.Version)
		return nil
	}
	if len(d.Keys) > 0 {
		if err := a.learnKeys(env, d.Keys); err != nil {
			return err
		}
	}
	a.stashed = nil
	a.applyDesired(&d)
	return nil
}

// learnKeys makes the keys a verified desired state lists the ones to
// trust: a newly announced key is trusted from now on, a retired one no
// more. The set must hold the key that signed the message, so that a
// message can never lock the node out of its own controller.
func (a *Agent) learnKeys(env *protocol.Envelope, set []protocol.PublicKey) error {
	keys, err := parseKeys(set)
	if err != nil {
		return fmt.Errorf("%w: desired state keys: %v", protocol.ErrMalformed, err)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = protocol.KeyID(k)
	}
	if !slices.Contains(ids, env.KeyID) {
		return fmt.Errorf("%w: desired state keys %v leave out its own signing key %s", protocol.ErrMalformed, ids, env.KeyID)
	}
	slices.Sort(ids)
	if slices.Equal(ids, a.verifier.KeyIDs()) {
		return nil
	}
	if err := a.store.SetKeys(set); err != nil {
		// Trust them anyway; the next desired state stores them again.
		a.log.Error("agent: controller keys not stored", "err", err)
	}
	a.log.Info("agent: controller keys changed", "from", a.verifier.KeyIDs(), "to", ids)
	a.verifier.SetKeys(keys)
	signal(a.dirty)
	return nil
}

// parseKeys decodes public keys.
func parseKeys(set []protocol.PublicKey) ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, 0, len(set))
	for _, k := range set {
		pub, err := k.Parse()
		if err != nil {
			return nil, err
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

func (a *Agent) acceptCommand(env *protocol.Envelope) error {
	if env.Type != protocol.TypeCommand {
		return fmt.Errorf("%w: %s message on a cmd topic", protocol.ErrMalformed, env.Type)
	}
	forget := a.forgetAt()
	entry, err := a.guard.Check(env, forget)
	if err != nil {
		return err
	}
	if err := a.store.AddReplay(entry, forget); err != nil {
		// The in-memory guard still refuses copies until a restart.
		a.log.Error("agent: replay entry not stored", "err", err)
	}
	var cmd protocol.Command
	if err := env.Decode(&cmd); err != nil {
		return err
	}
	switch cmd.Name {
	case protocol.CmdAck:
		a.ack(cmd)
	case protocol.CmdUpdate:
		a.requestUpdate(cmd.Update, env)
	case protocol.CmdAlert:
		return a.acceptAlert(env, cmd.Alert)
	case protocol.CmdAlertCancel:
		a.cancelAlert(cmd.Occurrence, env.ExpiresAt())
	case protocol.CmdStateNow:
		signal(a.dirty)
	case protocol.CmdReboot:
		if a.cfg.Reboot == nil {
			a.log.Warn("agent: reboot asked for, but this board has no way to reboot")
			return nil
		}
		a.log.Warn("agent: rebooting as the controller asked")
		a.cfg.Reboot()
	case protocol.CmdSelfTest:
		a.startTest(cmd)
	case protocol.CmdProbe:
		a.noteProbe(cmd.Probe)
	default:
		a.log.Warn("agent: unknown command ignored", "command", cmd.Name)
	}
	return nil
}

func (a *Agent) ack(cmd protocol.Command) {
	err := a.store.Ack(cmd.Epoch, cmd.Seq)
	switch {
	case errors.Is(err, ErrEpoch):
		a.log.Debug("agent: ack for another epoch ignored", "epoch", cmd.Epoch, "seq", cmd.Seq)
		return
	case err != nil:
		a.log.Error("agent: ack not stored", "seq", cmd.Seq, "err", err)
		return
	}
	if cmd.Epoch != a.epoch {
		signal(a.salvageWake) // events salvaged from an earlier store
		return
	}
	if cmd.Gap > 0 {
		for g := a.gap.Load(); cmd.Gap > g && !a.gap.CompareAndSwap(g, cmd.Gap); g = a.gap.Load() {
		}
		signal(a.outboxWake)
	}
	a.outboxChanged()
}

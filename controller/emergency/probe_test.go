package emergency

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestProbeMeasuresTheLead: a probe of an area is its measured fan-out
// once its window has passed (not before), from each node's first receipt
// within the window; an alert measured after it wins; and an area an
// alert measured within Probing.Every is not probed again.
func TestProbeMeasuresTheLead(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	s.Probing = Probing{Every: time.Hour, First: time.Minute, Window: 90 * time.Second}
	ctx := context.Background()
	if _, err := s.sendProbe(ctx, "31"); err != nil {
		t.Fatal(err)
	}
	if sent := w.rec.take(); !slices.Equal(sent, []string{"area/31 probe"}) {
		t.Fatalf("sent %v, want one probe on the area's topic", sent)
	}
	cmd := w.rec.lastSent("area/31")
	if !strings.HasPrefix(cmd.Probe, "pr") {
		t.Fatalf("probe named %q", cmd.Probe)
	}
	issued := w.fc.Now()
	s.ProbeReceipts("n1", []protocol.ProbeReceipt{{ID: cmd.Probe, At: issued.Add(400 * time.Millisecond)}})
	s.ProbeReceipts("n2", []protocol.ProbeReceipt{{ID: "pr-other", At: issued}, {ID: cmd.Probe, At: issued.Add(800 * time.Millisecond)}})
	s.ProbeReceipts("n1", []protocol.ProbeReceipt{{ID: cmd.Probe, At: issued.Add(5 * time.Second)}}) // its next state: the same receipt
	w.fc.Advance(30 * time.Second)
	if d, from := s.lead("31", 3); from != LeadEstimated || d != 300*time.Millisecond+300*time.Microsecond {
		t.Errorf("while the probe's window is open: %v %s, want the estimate", d, from)
	}
	w.fc.Advance(60 * time.Second)
	s.ProbeReceipts("n3", []protocol.ProbeReceipt{{ID: cmd.Probe, At: issued.Add(10 * time.Second)}}) // after the window
	// p99 of 400 and 800 ms: 1.2 × 800 + 100.
	if d, from := s.lead("31", 3); from != LeadProbed || d != 1060*time.Millisecond {
		t.Errorf("after the window: %v %s, want 1.06s probed", d, from)
	}

	// An alert measured since: its fan-out, and no probe of the area
	// within the hour.
	w.fc.Advance(time.Minute)
	tr := &tracking{issued: w.fc.Now(), fanout: map[string][]time.Duration{"31": {200 * time.Millisecond}}}
	s.mu.Lock()
	s.fanout["31"] = tr
	s.mu.Unlock()
	if d, from := s.lead("31", 3); from != LeadMeasured || d != 340*time.Millisecond {
		t.Errorf("after an alert: %v %s, want its 340ms measured (1.2 × 200 + 100)", d, from)
	}
	if _, err := s.sendProbe(ctx, "31"); err != nil {
		t.Fatal(err)
	}
	if sent := w.rec.take(); len(sent) != 0 {
		t.Errorf("probed an area an alert measured a minute ago: %v", sent)
	}
	w.fc.Advance(time.Hour)
	if _, err := s.sendProbe(ctx, "31"); err != nil {
		t.Fatal(err)
	}
	if sent := w.rec.take(); !slices.Equal(sent, []string{"area/31 probe"}) {
		t.Errorf("an hour after the alert sent %v, want a probe", sent)
	}

	// No round while an alert is on air, wherever it is.
	w.fc.Advance(2 * time.Hour)
	onAir := &tracking{}
	onAir.em.State, onAir.em.Expires = loaxa.EmergencyActive, w.fc.Now().Add(time.Minute)
	s.mu.Lock()
	s.live["e000009"] = onAir
	s.mu.Unlock()
	if _, err := s.probeRound(ctx); err != nil {
		t.Fatal(err)
	}
	if sent := w.rec.take(); len(sent) != 0 {
		t.Errorf("probed while an alert is on air: %v", sent)
	}
}

// TestProbeRound: Run probes First after it starts, one depth of the
// tree at a time, Window apart, and again Every after the round's last
// window; an area without nodes is left out.
func TestProbeRound(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	areas, nodes := bolt.NewAreaService(w.db), bolt.NewNodeService(w.db)
	for _, a := range []*loaxa.Area{{ID: "311", Name: "Thủy Nguyên", Parent: "31"}, {ID: "312", Name: "trống", Parent: "31"}} {
		if err := areas.CreateArea(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes.CreateNode(ctx, &loaxa.Node{ID: "n4", Name: "n4", Area: "311", SecretHash: loaxa.HashSecret("n4")}); err != nil {
		t.Fatal(err)
	}
	s := w.service()
	s.Probing = Probing{Every: time.Hour, First: time.Minute, Window: 90 * time.Second}
	s.ResendEvery = time.Hour // no resend pass in the way
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	// step waits for Run's timers (resend and probes) to be set, then
	// moves the clock on by d and waits for what it sends.
	step := func(d time.Duration, want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for w.fc.Timers() < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		w.fc.Advance(d)
		var got []string
		for time.Now().Before(deadline) {
			if got = w.rec.take(); len(got) > 0 || len(want) == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after %v sent %v, want %v", d, got, want)
		}
	}
	step(59*time.Second, nil)
	step(time.Second, []string{"area/31 probe"})
	step(90*time.Second, []string{"area/311 probe"})
	step(90*time.Second, nil) // the last level's window
	step(time.Hour, []string{"area/31 probe"})
}

// TestProbeRoundStopsAtARefusal: with the broker away, a round ends at
// the first probe it refuses, rather than each area waiting out its own
// refusal; the probe is forgotten, and the next round tries again.
func TestProbeRoundStopsAtARefusal(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	areas, nodes := bolt.NewAreaService(w.db), bolt.NewNodeService(w.db)
	if err := areas.CreateArea(ctx, &loaxa.Area{ID: "01", Name: "Hà Nội"}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.CreateNode(ctx, &loaxa.Node{ID: "hn1", Name: "hn1", Area: "01", SecretHash: loaxa.HashSecret("hn1")}); err != nil {
		t.Fatal(err)
	}
	s := w.service()
	w.rec.mu.Lock()
	w.rec.areaAway = errors.New("not connected to the broker")
	w.rec.mu.Unlock()
	if _, err := s.probeRound(ctx); err == nil || !strings.Contains(err.Error(), "not connected to the broker") {
		t.Errorf("round with the broker away: %v, want its refusal", err)
	}
	if sent := w.rec.take(); len(sent) != 1 {
		t.Errorf("tried %v, want one probe and no more", sent)
	}
	s.mu.Lock()
	open := len(s.probes)
	s.mu.Unlock()
	if open != 0 {
		t.Errorf("%d refused probes kept open", open)
	}
}

// TestNoProbeOfTheNextDepthWhileAnAlertIsOnAir: no area is probed while
// an alert is on air, also when the alert is sent during a round: the
// round ends before the next depth (it checked only when it began).
func TestNoProbeOfTheNextDepthWhileAnAlertIsOnAir(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	areas, nodes := bolt.NewAreaService(w.db), bolt.NewNodeService(w.db)
	if err := areas.CreateArea(ctx, &loaxa.Area{ID: "311", Name: "Thủy Nguyên", Parent: "31"}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.CreateNode(ctx, &loaxa.Node{ID: "n4", Name: "n4", Area: "311", SecretHash: loaxa.HashSecret("n4")}); err != nil {
		t.Fatal(err)
	}
	s := w.service()
	s.Probing = Probing{Every: time.Hour, First: time.Minute, Window: 90 * time.Second}
	done := make(chan error, 1)
	onAir := make(chan bool, 1)
	go func() {
		busy, err := s.probeRound(ctx)
		onAir <- busy
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for w.fc.Timers() < 1 && time.Now().Before(deadline) { // the first level's window
		time.Sleep(time.Millisecond)
	}
	if got := w.rec.take(); !slices.Equal(got, []string{"area/31 probe"}) {
		t.Fatalf("first level: %v", got)
	}
	// An alert to 31 (and so 311), sounding for minutes.
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	w.fc.Advance(90 * time.Second)
	if !w.fc.Now().Before(em.Expires) {
		t.Fatalf("the alert expired already (%v)", em.Expires)
	}
	// The round either ends (nothing more to probe while the alert is on
	// air) or probes the next level; wait for one or the other.
	var got []string
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && len(got) == 0; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			end = time.Now()
		case <-time.After(10 * time.Millisecond):
		}
		got = w.rec.take()
	}
	if len(got) != 0 {
		t.Errorf("probes sent while alert %s is on air: %v", em.ID, got)
	}
	w.fc.Advance(90 * time.Second) // let a round still under way end
	if !<-onAir {
		t.Errorf("the round cut short by alert %s does not say so: it would not be tried again once the alert is over", em.ID)
	}
}

// TestProbeLeavesOutClustersAwaitingTheirCode: codes issued for a new
// village's poles ahead of the installers had the village probed every
// round, a probe no board could answer (each round then waited its 90 s
// for nothing, and logged "had no receipt"), and its poles counted among
// the nodes of every area above it. Alerts leave such poles out; so do
// the probes: an area whose nodes all wait for their code is not probed,
// a probe counts the enrolled nodes only, and a pole put up is probed.
func TestProbeLeavesOutClustersAwaitingTheirCode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := bolt.NewAreaService(w.db).CreateArea(ctx, &loaxa.Area{ID: "312", Name: "Thôn mới", Parent: "31"}); err != nil {
		t.Fatal(err)
	}
	nodes := bolt.NewNodeService(w.db)
	for _, id := range []string{"w1", "w2"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "312"}); err != nil {
			t.Fatal(err)
		}
	}
	s := w.service()
	s.Probing = Probing{Every: time.Hour, First: time.Minute, Window: 90 * time.Second}
	probe := func(area string, want int) {
		t.Helper()
		if _, err := s.sendProbe(ctx, area); err != nil {
			t.Fatal(err)
		}
		sent := w.rec.take()
		if want == 0 {
			if len(sent) != 0 {
				t.Errorf("area %s, all of its nodes waiting for their code, probed: %v", area, sent)
			}
			return
		}
		if !slices.Equal(sent, []string{"area/" + area + " probe"}) {
			t.Fatalf("area %s: sent %v, want one probe", area, sent)
		}
		s.mu.Lock()
		p := s.probes[w.rec.lastSent("area/"+area).Probe]
		s.mu.Unlock()
		if p == nil || p.nodes != want {
			t.Errorf("probe of area %s: %+v, want it counting its %d enrolled nodes", area, p, want)
		}
	}
	probe("312", 0)
	probe("31", 3) // n1-n3, not w1 and w2

	// w1 is put up: its code redeemed.
	if _, err := nodes.SetNodeSecret(ctx, "w1", loaxa.NodeSecret{Hash: loaxa.HashSecret("w1"), BrokerHash: "x"}); err != nil {
		t.Fatal(err)
	}
	w.fc.Advance(2 * time.Hour)
	probe("312", 1)
}

// TestProbeRoundLeftOutForAnAlertComesBackAfterIt: a round left out
// because an alert was on air was not tried again until the next round,
// 6 hours later. A controller restarted during a typhoon warning (its
// first round 2 minutes after the start, the warning still in force)
// probed no area for 6 hours, and the first alert to a commune no alert
// had measured was led by the estimate (seen walking docs/emergency.md:
// "fan-out probes left out: an alert is on air", then no probe). Now the
// round is tried again a window later, until the alert is over.
func TestProbeRoundLeftOutForAnAlertComesBackAfterIt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	s := w.service()
	s.Probing = Probing{Every: 6 * time.Hour, First: 2 * time.Minute, Window: 90 * time.Second}
	s.ResendEvery = 24 * time.Hour // no resend pass in the way
	em := w.send(s)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	var sent []string
	// Steps of a window until an hour after the alert's expiry. Run's two
	// timers (resend, probes) set again say that what a step fired is
	// done: a round that probes sends before it waits out its window.
	onAir := true
	for end := em.Expires.Add(time.Hour); w.fc.Now().Before(end); {
		deadline := time.Now().Add(5 * time.Second)
		for w.fc.Timers() < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if w.fc.Timers() < 2 {
			t.Fatalf("at %v: Run's timers are not set", w.fc.Now())
		}
		if sent = w.rec.take(); len(sent) > 0 {
			if onAir {
				t.Fatalf("sent %v while alert %s was on air", sent, em.ID)
			}
			break
		}
		onAir = w.fc.Now().Add(s.Probing.Window).Before(em.Expires)
		w.fc.Advance(s.Probing.Window)
	}
	if !slices.Equal(sent, []string{"area/31 probe"}) {
		t.Fatalf("an hour after the alert's expiry (%v) sent %v; want the round left out for it, area 31 probed", em.Expires, sent)
	}
	if late := w.fc.Now().Sub(em.Expires); late > 2*s.Probing.Window {
		t.Errorf("area 31 probed %v after the alert's expiry; want within two windows", late)
	}
}

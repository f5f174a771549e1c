package loaxa_test

import (
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestPlayedIntoFault: a play counts as made into a fault when one of
// the node's silencing alarms was open at some time while it played:
// from its start (as late as the node began it) for as long as it
// played, until now while it is on air. A fault mended before the play
// began, one that came after it ended, and a play that never sounded do
// not count.
func TestPlayedIntoFault(t *testing.T) {
	at := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	now := at.Add(time.Hour)
	alarm := func(kind string, start, end time.Duration) *loaxa.Alarm {
		a := &loaxa.Alarm{Kind: kind, Start: at.Add(start)}
		if end != 0 {
			a.End = at.Add(end)
		}
		return a
	}
	played := func(state loaxa.DeliveryState, lateMS, playedMS int64) *loaxa.Delivery {
		return &loaxa.Delivery{Start: at, State: state, LateMS: lateMS, PlayedMS: playedMS}
	}
	// muted: the node's mute holds the play back (suspended, reason
	// muted) after it played playedMS.
	muted := func(playedMS int64) *loaxa.Delivery {
		d := played(loaxa.DeliverySuspended, 0, playedMS)
		d.Reason = protocol.ReasonMuted
		return d
	}
	for _, tc := range []struct {
		name   string
		d      *loaxa.Delivery
		faults []*loaxa.Alarm
		want   []string
	}{
		{"cut during the play", played(loaxa.DeliveryCompleted, 0, 60000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, 20*time.Second, time.Hour)}, []string{loaxa.AlarmSpeakerOpen}},
		{"open through it, two kinds", played(loaxa.DeliveryCompleted, 0, 60000),
			[]*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, -time.Hour, 0), alarm(loaxa.AlarmAmplifier, -time.Minute, 0), alarm(loaxa.AlarmSpeakerOpen, 0, 0)},
			[]string{loaxa.AlarmAmplifier, loaxa.AlarmSpeakerOpen}},
		{"mended before it began", played(loaxa.DeliveryCompleted, 0, 60000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, -time.Hour, -time.Second)}, nil},
		{"mended before its late start", played(loaxa.DeliveryCompleted, 30000, 60000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, -time.Hour, 10*time.Second)}, nil},
		{"cut after it ended", played(loaxa.DeliveryCompleted, 0, 60000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, 2*time.Minute, 0)}, nil},
		{"cut off after playing some", played(loaxa.DeliveryPreempted, 0, 10000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerShort, 5*time.Second, 0)}, []string{loaxa.AlarmSpeakerShort}},
		{"on air", played(loaxa.DeliveryStarted, 0, 0), []*loaxa.Alarm{alarm(loaxa.AlarmNoSoundDevice, 30*time.Minute, 0)}, []string{loaxa.AlarmNoSoundDevice}},
		{"missed: never sounded", played(loaxa.DeliveryMissed, 0, 0), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, -time.Hour, 0)}, nil},
		{"held back by the node's mute, never sounded", muted(0), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, 10*time.Minute, 0)}, nil},
		{"muted after playing some, cut later", muted(20000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, 10*time.Minute, 0)}, nil},
		{"muted after playing some, cut during it", muted(20000), []*loaxa.Alarm{alarm(loaxa.AlarmSpeakerOpen, 10*time.Second, 0)}, []string{loaxa.AlarmSpeakerOpen}},
	} {
		if got := loaxa.PlayedIntoFault(tc.d, tc.faults, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMutedDeliveryIsNotFailedToSound: a play the node's mute holds back
// (suspended, reason muted, until the node is unmuted within its
// deadline) is silent by the officer's choice and the node said so: it
// is not counted failed to sound however long past its time, as a play
// suspended for another reason and never reported over is.
func TestMutedDeliveryIsNotFailedToSound(t *testing.T) {
	at := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	for _, tc := range []struct {
		reason string
		want   bool
	}{
		{protocol.ReasonMuted, false},
		{protocol.ReasonPreempted, true},
	} {
		d := &loaxa.Delivery{Start: at, State: loaxa.DeliverySuspended, Reason: tc.reason, PlannedMS: 60_000}
		d.CheckSilence(later, loaxa.SilenceBound)
		if d.FailedToSound != tc.want {
			t.Errorf("suspended %s an hour past its start: failed to sound %v, want %v", tc.reason, d.FailedToSound, tc.want)
		}
	}
}

package schedule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// alarmRig is r with a health monitor on the same store as the
// scheduler's Alarms.
func alarmRig(t *testing.T) (*rig, *bolt.AlarmService) {
	t.Helper()
	r := newRig(t)
	alarms := bolt.NewAlarmService(r.db)
	m := health.NewMonitor()
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = r.clock, bolt.NewNodeService(r.db), alarms, alarms, r.msg
	r.must(t, m.Open(r.ctx))
	t.Cleanup(m.Close)
	r.s.Alarms = m
	return r, alarms
}

func openAlarmsOf(t *testing.T, r *rig, alarms *bolt.AlarmService, kind string) []*loaxa.Alarm {
	t.Helper()
	as, err := alarms.FindAlarms(r.ctx, loaxa.AlarmFilter{Kind: kind, Open: "open"})
	r.must(t, err)
	return as
}

// TestUnschedulableBulletinOpensOneAlarm: a district bulletin whose
// closing chime is not in the content library failed the compile of
// every cluster it targets, pass after pass, and only a log line per
// cluster said so: the officer whose bulletin never reached the communes
// did not know. A pass that meets it now opens one alarm for the
// bulletin (not one per cluster), naming it, its sender and what to do;
// the next passes leave it as it is, and the first pass that schedules
// the bulletin again (its chime uploaded) ends it; so does cancelling it.
func TestUnschedulableBulletinOpensOneAlarm(t *testing.T) {
	r, alarms := alarmRig(t)
	const chime = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"
	bad := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, ClosingChime: chime, FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)

	r.compile(t, true)
	open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(open) != 1 {
		t.Fatalf("%d bulletin-unschedulable alarms open after the pass, want 1: %v", len(open), open)
	}
	a := open[0]
	if a.Node != "" || a.Area != "318" || a.Severity != loaxa.SeverityCritical || a.Facts.Announcement != bad.ID ||
		a.Facts.Part != loaxa.UnplayableClosingChime || a.Facts.Content != chime || a.Facts.Nodes != 3 || a.Facts.FromAreaName != "Tiên Lãng" {
		t.Errorf("alarm %+v (facts %+v): want node \"\", area 318, critical, bulletin %s, closing chime %s, 3 nodes, sender Tiên Lãng",
			a, a.Facts, bad.ID, chime)
	}
	for _, words := range []string{bad.ID, "Cảnh báo mưa lớn", "Tiên Lãng (318)", "closing chime", chime, "3 clusters", "cancelled"} {
		if !strings.Contains(a.Detail, words) {
			t.Errorf("alarm detail %q does not say %q", a.Detail, words)
		}
	}

	// The next pass meets it again: still the one alarm.
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	if again := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(again) != 1 || again[0].ID != a.ID {
		t.Fatalf("after a second pass: %v, want alarm %s alone", again, a.ID)
	}

	// The chime is uploaded: the next pass schedules the bulletin and
	// ends the alarm.
	_, err := r.s.ContentService.CreateContent(r.ctx, &loaxa.Content{ID: chime, Title: "chime", Format: "wav/pcm16/16000/mono", Size: 3244, DurationMS: 2_000})
	r.must(t, err)
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Fatalf("alarms still open after a pass scheduled the bulletin: %v", left)
	}
	ended, err := alarms.FindAlarmByID(r.ctx, a.ID)
	r.must(t, err)
	if !ended.End.Equal(r.clock.Now()) {
		t.Errorf("alarm ended at %v, want the pass's %v", ended.End, r.clock.Now())
	}

	// Another one, cancelled: its alarm ends with the pass after.
	other := &loaxa.Announcement{Title: "Lịch cắt điện", ContentID: contentID, OpeningChime: strings.Repeat("7", 64), FromArea: "12346",
		Targets: loaxa.Targets{Areas: []string{"12346"}}, Priority: protocol.PriorityNormal, Start: t0.Add(3 * time.Hour), Repeat: 1}
	r.createUnchecked(t, other)
	r.compile(t, false)
	open = openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(open) != 1 || open[0].Facts.Announcement != other.ID || open[0].Facts.Nodes != 2 {
		t.Fatalf("after a second bad bulletin: %v, want one alarm for %s on 2 nodes", open, other.ID)
	}
	r.must(t, r.s.AnnouncementService.CancelAnnouncement(r.ctx, other.ID))
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Fatalf("alarms still open after the bulletin was cancelled: %v", left)
	}
}

// TestUnschedulableBulletinAlarmOutlivesARestart: a restarted controller
// takes back the open bulletin-unschedulable alarm (keyed by its
// bulletin, as it has no node): its first pass that still meets the
// bulletin opens no second one, and one that no longer does ends it.
func TestUnschedulableBulletinAlarmOutlivesARestart(t *testing.T) {
	r, alarms := alarmRig(t)
	bad := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, OpeningChime: strings.Repeat("9", 64), FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	r.compile(t, true)
	first := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(first) != 1 {
		t.Fatalf("%d alarms open, want 1", len(first))
	}

	// The restart: a new monitor on the same store.
	m := health.NewMonitor()
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = r.clock, bolt.NewNodeService(r.db), alarms, alarms, r.msg
	r.must(t, m.Open(r.ctx))
	t.Cleanup(m.Close)
	r.s.Alarms = m
	r.clock.Advance(time.Minute)
	r.compile(t, true)
	if again := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("after the restart's first pass: %v, want alarm %s alone", again, first[0].ID)
	}
	r.must(t, r.s.AnnouncementService.CancelAnnouncement(r.ctx, bad.ID))
	r.clock.Advance(time.Minute)
	r.compile(t, false)
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Fatalf("alarms still open after the bulletin was cancelled: %v", left)
	}
}

// TestUnschedulableBulletinLeavesTheRestOfTheSchedule: one district
// bulletin whose chime was missing from the library failed the whole
// compile of every cluster of the district, so none of them got any new
// schedule: not the commune's own bulletin sent after it, nor a
// cancellation, and after the horizon not even its old programme. A pass
// now leaves only that bulletin out of their desired states (its alarm
// says so) and sends the rest; once the chime is in the library, the next
// pass puts the bulletin back.
func TestUnschedulableBulletinLeavesTheRestOfTheSchedule(t *testing.T) {
	r, alarms := alarmRig(t)
	const chime = "6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d"
	bad := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, OpeningChime: chime, FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	r.compile(t, true)

	own := r.announce(t, loaxa.Targets{Areas: []string{"12346"}}, t0.Add(3*time.Hour))
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	for _, node := range []string{"tt-01", "tt-02"} {
		d := r.msg.last(node)
		if d == nil {
			t.Fatalf("%s: no desired state published: the district's unschedulable bulletin kept the commune's own bulletin from it", node)
		}
		ids := occurrenceIDs(d)
		if !slices.Contains(ids, loaxa.OccurrenceID(own.ID, own.Start)) {
			t.Errorf("%s: desired state %d has %v, not the commune's own bulletin %s", node, d.Version, ids, own.ID)
		}
		if slices.Contains(ids, loaxa.OccurrenceID(bad.ID, bad.Start)) {
			t.Errorf("%s: desired state %d has the unschedulable bulletin %s, whose chime it cannot fetch", node, d.Version, bad.ID)
		}
	}
	if d := r.msg.last("tm-01"); d == nil {
		t.Error("tm-01: no desired state published")
	}
	open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(open) != 1 || open[0].Facts.Nodes != 3 || !strings.Contains(open[0].Detail, "left out") {
		t.Fatalf("open alarms %v, want one for %s on 3 nodes saying it is left out", open, bad.ID)
	}

	// The chime arrives: the next pass puts the bulletin back.
	_, err := r.s.ContentService.CreateContent(r.ctx, &loaxa.Content{ID: chime, Title: "chime", Format: "wav/pcm16/16000/mono", Size: 3244, DurationMS: 2_000})
	r.must(t, err)
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	for _, node := range []string{"tt-01", "tt-02", "tm-01"} {
		if ids := occurrenceIDs(r.msg.last(node)); !slices.Contains(ids, loaxa.OccurrenceID(bad.ID, bad.Start)) {
			t.Errorf("%s: desired state has %v, not the bulletin %s once its chime is in the library", node, ids, bad.ID)
		}
	}
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Errorf("alarms still open: %v", left)
	}
}

// TestUnschedulableBulletinAlarmCountsClustersEnrolledSince: the alarm
// said "3 clusters" for as long as it stayed open, though a cluster
// enrolled in the district since missed the bulletin too. The pass that
// counts 4 now updates the same alarm.
func TestUnschedulableBulletinAlarmCountsClustersEnrolledSince(t *testing.T) {
	r, alarms := alarmRig(t)
	bad := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, ClosingChime: strings.Repeat("4", 64), FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	r.compile(t, true)
	first := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(first) != 1 || first[0].Facts.Nodes != 3 {
		t.Fatalf("after the first pass: %v, want one alarm on 3 nodes", first)
	}

	r.must(t, r.s.NodeService.CreateNode(r.ctx, &loaxa.Node{ID: "tm-02", Name: "tm-02", Area: "12347", Lat: 20.7, Lon: 106.5, SecretHash: loaxa.HashSecret("s")}))
	r.clock.Advance(30 * time.Second)
	r.compile(t, false)
	again := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("after a cluster was enrolled: %v, want alarm %s alone", again, first[0].ID)
	}
	if a := again[0]; a.Facts.Nodes != 4 || !strings.Contains(a.Detail, "4 clusters") {
		t.Errorf("alarm facts %+v, detail %q: want 4 nodes, \"4 clusters\"", a.Facts, a.Detail)
	}
}

// storeAreaUnchecked writes a into the store as it is, unchecked, as an
// older version, an old backup or a hand-mended store may have left it.
func (r *rig) storeAreaUnchecked(t *testing.T, a *loaxa.Area) {
	t.Helper()
	r.storeUnchecked(t, "areas", a.ID, a)
}

// createUnchecked stores a as an active announcement, given the next id,
// past the store's checks: a bulletin whose chime is not in the library,
// as an older version (which did not check chimes), a restored backup or
// a hand-mended store may hold.
func (r *rig) createUnchecked(t *testing.T, a *loaxa.Announcement) {
	t.Helper()
	r.must(t, r.db.Close())
	raw, err := bbolt.Open(r.db.Path(), 0o600, nil)
	r.must(t, err)
	err = raw.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("announcements"))
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.ID, a.State, a.CreatedAt = fmt.Sprintf("a%06d", seq), loaxa.AnnouncementActive, r.clock.Now()
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return b.Put([]byte(a.ID), data)
	})
	r.must(t, errors.Join(err, raw.Close(), r.db.Open()))
}

// storeUnchecked writes v as JSON under key in bucket, past every check
// of the store, as an older version or a hand-mended store may have.
func (r *rig) storeUnchecked(t *testing.T, bucket, key string, v any) {
	t.Helper()
	r.must(t, r.db.Close())
	raw, err := bbolt.Open(r.db.Path(), 0o600, nil)
	r.must(t, err)
	err = raw.Update(func(tx *bbolt.Tx) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return tx.Bucket([]byte(bucket)).Put([]byte(key), data)
	})
	r.must(t, errors.Join(err, raw.Close(), r.db.Open()))
}

// TestUnschedulableBulletinAlarmOutlivesNodesThatFailBeforeIt: a
// commune bulletin whose chime is missing has its alarm open; then the
// commune's time zone in the store became one this version cannot load,
// so every cluster of the commune failed its compile before it reached
// the bulletin, none counted it, and the pass ended the alarm, though
// the bulletin still could not be scheduled anywhere. The alarm now stays
// open, counting the clusters that do not get the bulletin, until the
// bulletin is fixed or gone: with the zone still refused, its chime
// uploaded ends it.
func TestUnschedulableBulletinAlarmOutlivesNodesThatFailBeforeIt(t *testing.T) {
	r, alarms := alarmRig(t)
	const chime = "3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e"
	bad := &loaxa.Announcement{Title: "Lịch cắt điện", ContentID: contentID, OpeningChime: chime, FromArea: "12346",
		Targets: loaxa.Targets{Areas: []string{"12346"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	r.compile(t, true)
	first := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(first) != 1 || first[0].Facts.Nodes != 2 {
		t.Fatalf("after the first pass: %v, want one alarm on 2 nodes", first)
	}

	r.storeAreaUnchecked(t, &loaxa.Area{ID: "12346", Name: "Tiên Thắng", Parent: "318", TimeZone: "Mars/Olympus", CreatedAt: t0})
	r.clock.Advance(30 * time.Second)
	if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with the commune's zone refused: %v, want its nodes failed for the refused setting", err)
	}
	again := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("after a pass whose nodes all failed before the bulletin: %v, want alarm %s still open", again, first[0].ID)
	}
	if a := again[0]; a.Facts.Nodes != 2 || a.Facts.Part != loaxa.UnplayableOpeningChime || a.Facts.Content != chime {
		t.Errorf("alarm facts %+v: want 2 nodes, the opening chime %s", a.Facts, chime)
	}

	// The chime is uploaded: fixed, though no node compiles yet.
	_, err := r.s.ContentService.CreateContent(r.ctx, &loaxa.Content{ID: chime, Title: "chime", Format: "wav/pcm16/16000/mono", Size: 3244, DurationMS: 2_000})
	r.must(t, err)
	r.clock.Advance(30 * time.Second)
	if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with the commune's zone refused: %v, want its nodes failed for the refused setting", err)
	}
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Errorf("alarms still open once the chime is in the library: %v", left)
	}
}

// TestUnschedulableBulletinCountsClustersThatFailedBeforeIt: a district
// bulletin with its chime missing, and one of its communes' zone refused:
// the clusters of that commune failed before they met the bulletin, and
// the alarm counted only the one cluster of the other commune. They miss
// it too, and count now; cancelled, its alarm ends though they still fail.
func TestUnschedulableBulletinCountsClustersThatFailedBeforeIt(t *testing.T) {
	r, alarms := alarmRig(t)
	r.storeAreaUnchecked(t, &loaxa.Area{ID: "12346", Name: "Tiên Thắng", Parent: "318", TimeZone: "Mars/Olympus", CreatedAt: t0})
	bad := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, ClosingChime: strings.Repeat("2", 64), FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	if err := r.s.CompileAll(r.ctx, true); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with commune 12346's zone refused: %v, want its nodes failed for the refused setting", err)
	}
	open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(open) != 1 || open[0].Facts.Nodes != 3 || !strings.Contains(open[0].Detail, "3 clusters") {
		t.Fatalf("open alarms %v, want one for %s on 3 nodes (tm-01 met it, tt-01 and tt-02 failed before it)", open, bad.ID)
	}

	r.must(t, r.s.AnnouncementService.CancelAnnouncement(r.ctx, bad.ID))
	r.clock.Advance(30 * time.Second)
	if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with commune 12346's zone refused: %v, want its nodes failed for the refused setting", err)
	}
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 0 {
		t.Errorf("alarms still open after the bulletin was cancelled: %v", left)
	}
}

// TestUnschedulableBulletinAlarmEndsOnceItExpired: a one-off bulletin
// whose chime is missing stays active after its time has passed (nothing
// marks a bulletin done), and every node's compile still looked its
// content up before its times, so its alarm stayed open for ever: an
// officer was told to cancel a bulletin whose day was long over. Once it
// has no play left in any window a pass compiles, it is not met, and its
// alarm ends. One due beyond the horizon still has its alarm now.
func TestUnschedulableBulletinAlarmEndsOnceItExpired(t *testing.T) {
	r, alarms := alarmRig(t)
	bad := &loaxa.Announcement{Title: "Lịch tiêm phòng", ContentID: contentID, OpeningChime: strings.Repeat("8", 64), FromArea: "12346",
		Targets: loaxa.Targets{Areas: []string{"12346"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	later := &loaxa.Announcement{Title: "Ngày hội đại đoàn kết", ContentID: contentID, OpeningChime: strings.Repeat("8", 64), FromArea: "12346",
		Targets: loaxa.Targets{Areas: []string{"12346"}}, Priority: protocol.PriorityNormal, Start: t0.Add(40 * 24 * time.Hour), Repeat: 1}
	r.createUnchecked(t, later)
	r.compile(t, true)
	if open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(open) != 2 {
		t.Fatalf("%d alarms open before their times, want 2 (one due beyond the horizon)", len(open))
	}
	// A day after its time: still within the days a pass looks back on.
	r.clock.Advance(26 * time.Hour)
	r.compile(t, false)
	if open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(open) != 2 {
		t.Fatalf("%d alarms open a day after its time, want 2", len(open))
	}
	r.clock.Advance(9 * 24 * time.Hour)
	r.compile(t, false)
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 1 || left[0].Facts.Announcement != later.ID {
		t.Errorf("alarms open 10 days after the first bulletin's only time: %v, want only %s's", left, later.ID)
	}
}

// failingContent is a content store whose reads of one id fail, as a
// store with a damaged page or a full disk's read errors would.
type failingContent struct {
	loaxa.ContentService
	bad string
}

func (f failingContent) FindContentByID(ctx context.Context, id string) (*loaxa.Content, error) {
	if id == f.bad {
		return nil, fmt.Errorf("find content %s: read page 1234: input/output error", id)
	}
	return f.ContentService.FindContentByID(ctx, id)
}

// TestUnschedulableBulletinAlarmOutlivesAStoreFailure: a bulletin whose
// chime is missing, and whose clusters all fail before they reach it (the
// commune's zone refused), is judged on its own; when the store failed to
// read its chime that judgement counted as "fine", and the pass ended the
// alarm though nothing was fixed. A store failure now leaves the alarm as
// it was (the same alarm, its count unchanged), and says so in the log;
// the next pass that can read the store judges it again.
func TestUnschedulableBulletinAlarmOutlivesAStoreFailure(t *testing.T) {
	r, alarms := alarmRig(t)
	const chime = "4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f"
	bad := &loaxa.Announcement{Title: "Lịch cắt điện", ContentID: contentID, OpeningChime: chime, FromArea: "12346",
		Targets: loaxa.Targets{Areas: []string{"12346"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	r.storeAreaUnchecked(t, &loaxa.Area{ID: "12346", Name: "Tiên Thắng", Parent: "318", TimeZone: "Mars/Olympus", CreatedAt: t0})
	if err := r.s.CompileAll(r.ctx, true); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with the commune's zone refused: %v, want its nodes failed for the refused setting", err)
	}
	first := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(first) != 1 || first[0].Facts.Nodes != 2 {
		t.Fatalf("after the first pass: %v, want one alarm on 2 nodes", first)
	}

	var logs bytes.Buffer
	r.s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	store := r.s.ContentService
	r.s.ContentService = failingContent{ContentService: store, bad: chime}
	r.clock.Advance(30 * time.Second)
	if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with the store failing: %v, want its nodes failed for the refused setting", err)
	}
	again := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(again) != 1 || again[0].ID != first[0].ID || again[0].Facts.Nodes != 2 {
		t.Fatalf("after a pass whose store failed to read the chime: %v, want alarm %s open as it was", again, first[0].ID)
	}
	if !strings.Contains(logs.String(), "bulletin not judged; its alarm is left as it was") || !strings.Contains(logs.String(), "input/output error") {
		t.Errorf("the pass did not log the bulletin it could not judge:\n%s", logs.String())
	}

	// The store reads again; the chime is still missing: still open.
	r.s.ContentService = store
	r.clock.Advance(30 * time.Second)
	if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with the commune's zone refused: %v", err)
	}
	if left := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable); len(left) != 1 || left[0].ID != first[0].ID {
		t.Errorf("after the store recovered: %v, want alarm %s still open", left, first[0].ID)
	}
}

// TestUnschedulableBulletinCountsEachClusterOnce: the clusters that fail
// before they reach a bulletin are counted by their area (once for all of
// its clusters) and by id: a cluster named by id and through its area
// too, or named twice, is one cluster.
func TestUnschedulableBulletinCountsEachClusterOnce(t *testing.T) {
	r, alarms := alarmRig(t)
	r.storeAreaUnchecked(t, &loaxa.Area{ID: "12346", Name: "Tiên Thắng", Parent: "318", TimeZone: "Mars/Olympus", CreatedAt: t0})
	both := &loaxa.Announcement{Title: "Cảnh báo mưa lớn", ContentID: contentID, ClosingChime: strings.Repeat("1", 64), FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"12346"}, Nodes: []string{"tt-01", "tt-01"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	named := &loaxa.Announcement{Title: "Lịch cắt điện", ContentID: contentID, ClosingChime: strings.Repeat("1", 64), FromArea: "318",
		Targets: loaxa.Targets{Nodes: []string{"tt-02", "tm-01", "tt-02"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, both)
	r.createUnchecked(t, named)
	if err := r.s.CompileAll(r.ctx, true); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
		t.Fatalf("pass with commune 12346's zone refused: %v", err)
	}
	nodes := map[string]int{}
	for _, a := range openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable) {
		nodes[a.Facts.Announcement] = a.Facts.Nodes
	}
	// named: tt-02 failed before it, tm-01 met it.
	if nodes[both.ID] != 2 || nodes[named.ID] != 2 {
		t.Errorf("alarms count %v, want 2 clusters for %s (tt-01 and tt-02) and 2 for %s (tt-02 and tm-01)", nodes, both.ID, named.ID)
	}
}

// TestStoredBulletinByEasterIsLeftOut: an rrule counted from Easter
// (BYEASTER, rrule-go's extension, not RFC 5545) is refused now, as in a
// session's days; one an older version stored, or a backup restored, is a
// bulletin whose rule this version refuses: the pass leaves it out with
// its alarm naming BYEASTER and sends the rest of the schedule, as for
// any refused rule, rather than stopping.
func TestStoredBulletinByEasterIsLeftOut(t *testing.T) {
	r, alarms := alarmRig(t)
	bad := &loaxa.Announcement{Title: "Lễ Phục sinh", ContentID: contentID, RRule: "FREQ=YEARLY;BYEASTER=0", FromArea: "318",
		Targets: loaxa.Targets{Areas: []string{"318"}}, Priority: protocol.PriorityNormal, Start: t0.Add(2 * time.Hour), Repeat: 1}
	r.createUnchecked(t, bad)
	own := r.announce(t, loaxa.Targets{Areas: []string{"12346"}}, t0.Add(3*time.Hour))
	r.compile(t, true)
	for _, node := range []string{"tt-01", "tt-02"} {
		if ids := occurrenceIDs(r.msg.last(node)); !slices.Contains(ids, loaxa.OccurrenceID(own.ID, own.Start)) {
			t.Errorf("%s: desired state has %v, not the commune's own bulletin %s", node, ids, own.ID)
		}
	}
	open := openAlarmsOf(t, r, alarms, loaxa.AlarmBulletinUnschedulable)
	if len(open) != 1 || open[0].Facts.Announcement != bad.ID || open[0].Facts.Part != loaxa.UnplayableRule || !strings.Contains(open[0].Detail, "BYEASTER") {
		t.Fatalf("open alarms %+v, want one for %s saying its rule (BYEASTER) is refused", open, bad.ID)
	}
}

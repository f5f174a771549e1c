package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// province is the scheduler of a province in bbolt in a temp dir: 15
// districts of communes of 50 nodes each, a bulletin every day at 06:00
// and 17:00 to the province, one a day to each district, one a week to
// each commune, over the 7-day horizon (22 occurrences a node). Nothing
// is compiled yet.
type province struct {
	s      *schedule.Scheduler
	db     *bolt.DB
	ctx    context.Context
	b      *testing.B
	anns   int
	bumped int
}

func newProvince(b *testing.B, nodes int) *province {
	b.Helper()
	ctx := context.Background()
	fc := clock.NewFake(t0)
	db := bolt.NewDB(b.TempDir() + "/loaxa.db")
	db.Now = fc.Now
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s := schedule.NewScheduler()
	s.AreaService, s.NodeService = bolt.NewAreaService(db), bolt.NewNodeService(db)
	s.AnnouncementService, s.ContentService = bolt.NewAnnouncementService(db), bolt.NewContentService(db)
	s.DeliveryService, s.DesiredService = bolt.NewDeliveryService(db), bolt.NewDesiredService(db)
	s.Messenger, s.Clock, s.Logger = &messenger{}, fc, slog.New(slog.DiscardHandler)
	p := &province{s: s, db: db, ctx: ctx, b: b}
	_, err := s.ContentService.CreateContent(ctx, &loaxa.Content{ID: contentID, Title: "x", Format: "wav/pcm16/16000/mono", Size: 32044, DurationMS: 60_000})
	p.must(err)
	p.must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}))
	p.announce("31", t0.Add(time.Hour), "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
	communes := nodes / 50
	for d := range 15 {
		district := fmt.Sprintf("3%02d", d)
		p.must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: district, Name: "Huyện " + district, Parent: "31"}))
		p.announce(district, t0.Add(time.Hour), "FREQ=DAILY;BYHOUR=11;BYMINUTE=0")
	}
	for c := range communes {
		commune := fmt.Sprintf("1%04d", c)
		p.must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: commune, Name: "Xã " + commune, Parent: fmt.Sprintf("3%02d", c%15)}))
		p.announce(commune, t0.Add(time.Hour), "FREQ=WEEKLY")
		for n := range 50 {
			id := fmt.Sprintf("%s-%02d", commune, n)
			p.must(s.NodeService.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: commune, SecretHash: loaxa.HashSecret("s")}))
		}
	}
	return p
}

func (p *province) must(err error) {
	if err != nil {
		p.b.Fatal(err)
	}
}

func (p *province) announce(area string, start time.Time, rule string) {
	p.anns++
	p.must(p.s.AnnouncementService.CreateAnnouncement(p.ctx, &loaxa.Announcement{Title: "Bản tin", ContentID: contentID,
		Targets: loaxa.Targets{Areas: []string{area}}, Priority: protocol.PriorityNormal, Start: start, RRule: rule, Repeat: 1}))
}

// firstPass compiles, stores and publishes every node, and returns a
// function that reports how long it took as the metric first-pass-ms
// (after the loop: ResetTimer drops the metrics reported before it).
func (p *province) firstPass() (report func()) {
	start := time.Now()
	p.must(p.s.CompileAll(p.ctx, true))
	took := time.Since(start)
	p.b.Logf("%d announcements: first pass (compile, store and publish every node) %v", p.anns, took.Round(time.Millisecond))
	return func() { p.b.ReportMetric(float64(took.Milliseconds()), "first-pass-ms") }
}

// BenchmarkCompileAll measures the scheduler's pass over a province
// (newProvince), which it runs every Interval (30 s) and after every
// change (an enrolment, an announcement). The first pass (before the
// timer) compiles and publishes every node; the measured ones find nothing
// changed, as a pass every 30 s mostly does.
//
//	go test -run '^$' -bench CompileAll -benchtime 5x ./controller/schedule
func BenchmarkCompileAll(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run("nodes="+strconv.Itoa(nodes), func(b *testing.B) {
			p := newProvince(b, nodes)
			report := p.firstPass()
			b.ResetTimer()
			for b.Loop() {
				p.must(p.s.CompileAll(p.ctx, false))
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
			report()
		})
	}
}

// BenchmarkChangedPass measures the passes that change every node of a
// province (newProvince): the first one (a controller's start after an
// upgrade, or on a new store), reported as first-pass-ms, and then, timed,
// one after each new bulletin to the whole province (a province officer's
// bulletin; a new session for a district is the same work on fewer
// nodes). Each changed node gets new deliveries, a new stored desired
// state and a publish.
//
//	go test -run '^$' -bench ChangedPass -benchtime 3x ./controller/schedule
func BenchmarkChangedPass(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run("nodes="+strconv.Itoa(nodes), func(b *testing.B) {
			p := newProvince(b, nodes)
			report := p.firstPass()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				p.bumped++
				p.announce("31", t0.Add(time.Duration(p.bumped)*time.Hour+time.Minute), "")
				b.StartTimer()
				p.must(p.s.CompileAll(p.ctx, false))
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
			report()
		})
	}
}

// BenchmarkCheckSessionDeletion measures what an officer waits for when
// deleting a session (DELETE /api/v1/sessions/{id} asks the scheduler
// which plays of bulletins from above wait for it) for a session of a
// commune (50 nodes), of a district (the 650 nodes of its other 13 communes) and
// of the province (the 9,300 nodes of the other districts): a province of 15
// districts of communes of 50 nodes under a national area, with the
// bulletins of BenchmarkCompileAll, a session at 17:00 in one commune, in
// its district and in the province, and a priority bulletin of the
// national area every day at 11:00, placed in each node's nearest session:
// without the commune's or the district's session the week's plays move
// to the session above; without the province's, today's (its time passed
// at noon) is lost and the rest of the week's move to their own times.
//
//	go test -run '^$' -bench CheckSessionDeletion -benchtime 3x -benchmem ./controller/schedule
func BenchmarkCheckSessionDeletion(b *testing.B) {
	const nodes = 10000
	ctx := context.Background()
	fc := clock.NewFake(t0) // 12:00 in Hải Phòng
	db := bolt.NewDB(b.TempDir() + "/loaxa.db")
	db.Now = fc.Now
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := schedule.NewScheduler()
	s.AreaService, s.NodeService = bolt.NewAreaService(db), bolt.NewNodeService(db)
	s.AnnouncementService, s.ContentService = bolt.NewAnnouncementService(db), bolt.NewContentService(db)
	s.SessionService = bolt.NewSessionService(db)
	s.Clock, s.Logger = fc, slog.New(slog.DiscardHandler)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err := s.ContentService.CreateContent(ctx, &loaxa.Content{ID: contentID, Title: "x", Format: "wav/pcm16/16000/mono", Size: 32044, DurationMS: 60_000})
	must(err)
	announce := func(area, rule string) {
		must(s.AnnouncementService.CreateAnnouncement(ctx, &loaxa.Announcement{Title: "Bản tin", ContentID: contentID,
			Targets: loaxa.Targets{Areas: []string{area}}, Priority: protocol.PriorityNormal, Start: t0.Add(time.Hour), RRule: rule, Repeat: 1}))
	}
	session := func(area string) string {
		x := &loaxa.Session{Area: area, Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45, CreatedAt: t0.AddDate(0, 0, -7)}
		must(s.SessionService.CreateSession(ctx, x))
		return x.ID
	}
	must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: "vn", Name: "Việt Nam"}))
	must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng", Parent: "vn"}))
	announce("31", "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
	for d := range 15 {
		district := fmt.Sprintf("3%02d", d)
		must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: district, Name: "Huyện " + district, Parent: "31"}))
		announce(district, "FREQ=DAILY;BYHOUR=11;BYMINUTE=0")
	}
	for c := range nodes / 50 {
		commune := fmt.Sprintf("1%04d", c)
		must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: commune, Name: "Xã " + commune, Parent: fmt.Sprintf("3%02d", c%15)}))
		announce(commune, "FREQ=WEEKLY")
		for n := range 50 {
			id := fmt.Sprintf("%s-%02d", commune, n)
			must(s.NodeService.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: commune, SecretHash: loaxa.HashSecret("s")}))
		}
	}
	must(s.AnnouncementService.CreateAnnouncement(ctx, &loaxa.Announcement{Title: "Bản tin quốc gia", ContentID: contentID, FromArea: "vn",
		Targets: loaxa.Targets{Areas: []string{"31"}}, Priority: protocol.PriorityHigh, Start: t0.Add(-time.Hour), RRule: "FREQ=DAILY", Repeat: 1}))
	ids := map[string]string{}
	for _, area := range []string{"10000", "300", "31"} {
		ids[area] = session(area)
	}
	for _, c := range []struct{ name, area string }{{"commune", "10000"}, {"district", "300"}, {"province", "31"}} {
		id := ids[c.area]
		b.Run(c.name, func(b *testing.B) {
			var got []loaxa.SessionBulletin
			for b.Loop() {
				got, err = s.CheckSessionDeletion(ctx, id)
				must(err)
			}
			// Today's play moves to the session of the area above; the
			// province has none above, so there it is lost.
			want := 0
			if c.name == "province" {
				want = 1
			}
			if lost := loaxa.LostBulletins(got); len(lost) != want || len(got) < 7 {
				b.Fatalf("%s session: %d plays from above, %d lost; want a week's, %d lost", c.name, len(got), len(lost), want)
			}
		})
	}
}

// areaScales are the areas a programme or a conflict check covers in a
// province of 10,000 nodes (newProvince): a commune (50 nodes), a
// district (its 14 communes, 700 nodes) and the province.
var areaScales = []struct {
	name, area string
	// items is how many occurrences a week of its programme has: the
	// province's two a day, its districts' one, its communes' weekly one
	// (today's 06:00 and 11:00 before the bulletins' start at 13:00).
	items int
	nodes int
}{{"commune", "10000", 13 + 6 + 1, 50}, {"district", "300", 13 + 6 + 14, 700}, {"province", "31", 13 + 15*6 + 200, 10000}}

// BenchmarkAreaProgramme measures what a commune, district or province
// officer waits for when opening the programme of their area for a week
// (GET /api/v1/areas/{id}/programme, the console's calendar), in a
// province of 10,000 nodes (newProvince).
//
//	go test -run '^$' -bench AreaProgramme -benchtime 3x -benchmem ./controller/schedule
func BenchmarkAreaProgramme(b *testing.B) {
	p := newProvince(b, 10000)
	from := t0.Add(-12 * time.Hour) // 00:00 today in Hải Phòng
	for _, c := range areaScales {
		b.Run(c.name, func(b *testing.B) {
			var items []loaxa.ProgrammeItem
			for b.Loop() {
				var err error
				items, err = p.s.AreaProgramme(p.ctx, c.area, from, from.AddDate(0, 0, 7))
				p.must(err)
			}
			if len(items) != c.items {
				b.Fatalf("%s: %d items in a week; want %d", c.name, len(items), c.items)
			}
		})
	}
}

// BenchmarkCheckAnnouncement measures the conflict check of a new
// bulletin (POST /api/v1/announcements answers 409 with the conflicts
// before the officer sends it anyway) to a commune, a district or the
// province of 10,000 nodes (newProvince): a normal one tomorrow at 06:00,
// over the province's daily 06:00 bulletin on every node it reaches.
//
//	go test -run '^$' -bench CheckAnnouncement -benchtime 3x -benchmem ./controller/schedule
func BenchmarkCheckAnnouncement(b *testing.B) {
	p := newProvince(b, 10000)
	for _, c := range areaScales {
		b.Run(c.name, func(b *testing.B) {
			a := &loaxa.Announcement{Title: "Thông báo", ContentID: contentID, Targets: loaxa.Targets{Areas: []string{c.area}},
				Priority: protocol.PriorityNormal, Start: t0.Add(18 * time.Hour), Repeat: 1}
			var got []loaxa.Conflict
			for b.Loop() {
				var err error
				got, err = p.s.CheckAnnouncement(p.ctx, a)
				p.must(err)
			}
			if len(got) != c.nodes {
				b.Fatalf("%s: %d conflicts; want one on each of its %d nodes", c.name, len(got), c.nodes)
			}
		})
	}
}

// refusingMessenger refuses every publish while refuse is set, and
// otherwise takes it without keeping it (a broker that accepted it).
type refusingMessenger struct{ refuse bool }

func (m *refusingMessenger) PublishDesired(context.Context, *protocol.DesiredState) error {
	if m.refuse {
		return errors.New("broker did not accept it within 10s")
	}
	return nil
}

func (m *refusingMessenger) SendNodeCommand(context.Context, string, protocol.Command, time.Duration) error {
	return nil
}

// BenchmarkRetryAfterOutage measures, per op, the retry round after a
// broker outage in which every node of a province (newProvince) waited:
// the broker refused a pass's publishes, so every node went onto the
// retry list, and now it takes them all. Each accepted retry is recorded
// as published in the store.
//
//	go test -run '^$' -bench RetryAfterOutage -benchtime 3x -benchmem ./controller/schedule
func BenchmarkRetryAfterOutage(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run("nodes="+strconv.Itoa(nodes), func(b *testing.B) {
			p := newProvince(b, nodes)
			p.firstPass()
			broker := &refusingMessenger{}
			p.s.Messenger = broker
			fc := p.s.Clock.(*clock.Fake)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				// The outage: a pass the broker refuses puts every node on
				// the retry list, due RetryMin later.
				broker.refuse = true
				if err := p.s.CompileAll(p.ctx, true); !errors.Is(err, schedule.ErrNotAccepted) {
					b.Fatalf("pass during the outage: %v, want ErrNotAccepted", err)
				}
				if n, _ := p.s.Undelivered(); n != nodes {
					b.Fatalf("%d nodes waiting for their retry, want %d", n, nodes)
				}
				broker.refuse = false
				fc.Advance(p.s.RetryMin)
				b.StartTimer()
				p.s.RetryDue(p.ctx)
				b.StopTimer()
				if n, _ := p.s.Undelivered(); n != 0 {
					b.Fatalf("%d nodes still waiting after the round", n)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/round")
		})
	}
}

// BenchmarkPassWithFailingNodes measures a pass in which every node's
// compile fails before it places a bulletin (the province's time zone in
// the store is one this version refuses): 5,000 nodes and 200 active
// bulletins (those of newProvince and more to the province). For each
// such node the pass counts the bulletins it is for, which it misses
// (their bulletin-unschedulable alarm counts them), and logs the failures
// once per cause.
//
//	go test -run '^$' -bench PassWithFailingNodes -benchtime 10x -benchmem ./controller/schedule
func BenchmarkPassWithFailingNodes(b *testing.B) {
	p := newProvince(b, 5000)
	for p.anns < 200 {
		p.announce("31", t0.Add(time.Duration(p.anns)*time.Minute), "")
	}
	p.must(p.db.Close())
	raw, err := bbolt.Open(p.db.Path(), 0o600, nil)
	p.must(err)
	p.must(raw.Update(func(tx *bbolt.Tx) error {
		data, err := json.Marshal(&loaxa.Area{ID: "31", Name: "Hải Phòng", TimeZone: "Mars/Olympus", CreatedAt: t0})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("areas")).Put([]byte("31"), data)
	}))
	p.must(errors.Join(raw.Close(), p.db.Open()))
	for b.Loop() {
		if err := p.s.CompileAll(p.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
			b.Fatalf("pass: %v, want every node failed for the refused zone", err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/pass")
}

package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// BenchmarkCompileAll measures the scheduler's pass over a province, which
// it runs every Interval (30 s) and after every change (an enrolment, an
// announcement): 15 districts of communes of 50 nodes each, a bulletin
// every day at 06:00 and 17:00 to the province, one a day to each
// district, one a week to each commune, over the 7-day horizon. The first
// pass (before the timer) compiles and publishes every node; the measured
// ones find nothing changed, as a pass every 30 s mostly does.
//
//	go test -run '^$' -bench CompileAll -benchtime 5x ./controller/schedule
func BenchmarkCompileAll(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run("nodes="+strconv.Itoa(nodes), func(b *testing.B) {
			ctx := context.Background()
			fc := clock.NewFake(t0)
			db := bolt.NewDB(b.TempDir() + "/loaxa.db")
			db.Now = fc.Now
			if err := db.Open(); err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s := schedule.NewScheduler()
			s.AreaService, s.NodeService = bolt.NewAreaService(db), bolt.NewNodeService(db)
			s.AnnouncementService, s.ContentService = bolt.NewAnnouncementService(db), bolt.NewContentService(db)
			s.DeliveryService, s.DesiredService = bolt.NewDeliveryService(db), bolt.NewDesiredService(db)
			s.Messenger, s.Clock, s.Logger = &messenger{}, fc, slog.New(slog.DiscardHandler)
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
			must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}))
			announce("31", "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
			communes := nodes / 50
			for d := range 15 {
				district := fmt.Sprintf("3%02d", d)
				must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: district, Name: "Huyện " + district, Parent: "31"}))
				announce(district, "FREQ=DAILY;BYHOUR=11;BYMINUTE=0")
			}
			for c := range communes {
				commune := fmt.Sprintf("1%04d", c)
				must(s.AreaService.CreateArea(ctx, &loaxa.Area{ID: commune, Name: "Xã " + commune, Parent: fmt.Sprintf("3%02d", c%15)}))
				announce(commune, "FREQ=WEEKLY")
				for n := range 50 {
					id := fmt.Sprintf("%s-%02d", commune, n)
					must(s.NodeService.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: commune, SecretHash: loaxa.HashSecret("s")}))
				}
			}
			start := time.Now()
			must(s.CompileAll(ctx, true))
			b.Logf("%d nodes, %d announcements: first pass (compile and publish every node) %v", nodes, 1+15+communes, time.Since(start).Round(time.Millisecond))
			b.ResetTimer()
			for b.Loop() {
				must(s.CompileAll(ctx, false))
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
		})
	}
}

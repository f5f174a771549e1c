package bolt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

func TestAuditService(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAuditService(db)
	ctx := context.Background()

	entries := []loaxa.AuditEntry{
		{Actor: "admin", Action: "area.create", Target: "hp.an-duong", Area: "hp.an-duong", Remote: "10.0.0.1:5000"},
		{Actor: "can-bo", Action: "announcement.create", Target: "a000001", Area: "hp.an-duong.le-loi", Detail: "priority=normal"},
		{Actor: "admin", Action: "user.create", Target: "tinh", Area: "hp"},
		{Actor: "admin", Action: "auth.login", Target: "admin"},
		{Actor: "ky-thuat", Action: "node.revoke", Target: "n1", Area: "hn"},
		// On several areas: filed under the province, seen in each.
		{Actor: "admin", Action: "announcement.create", Target: "a000002", Area: "hp", Areas: []string{"hp.an-duong.le-loi", "hp.other"}},
	}
	for i := range entries {
		clk.Advance(time.Minute)
		e := entries[i]
		must(t, s.RecordAudit(ctx, &e))
		if e.Seq != uint64(i+1) || !e.At.Equal(clk.Now().UTC()) {
			t.Errorf("entry %d: seq %d at %v, want %d at %v", i, e.Seq, e.At, i+1, clk.Now())
		}
	}
	at := func(i int) time.Time { return clk.Now().Add(time.Duration(i-len(entries)+1) * time.Minute) }

	tests := []struct {
		name string
		f    loaxa.AuditFilter
		want []uint64
	}{
		{"all", loaxa.AuditFilter{}, []uint64{1, 2, 3, 4, 5, 6}},
		{"actor", loaxa.AuditFilter{Actor: "admin"}, []uint64{1, 3, 4, 6}},
		{"district subtree, with an entry on one of its areas among others", loaxa.AuditFilter{Within: "hp.an-duong"}, []uint64{1, 2, 6}},
		{"province subtree leaves out the whole-installation entry", loaxa.AuditFilter{Within: "hp"}, []uint64{1, 2, 3, 6}},
		{"another province sees none of hp's", loaxa.AuditFilter{Within: "hn"}, []uint64{5}},
		{"from inclusive, to exclusive", loaxa.AuditFilter{From: at(1), To: at(3)}, []uint64{2, 3}},
		{"limit", loaxa.AuditFilter{Limit: 2}, []uint64{1, 2}},
		{"newest first, the limit keeping the newest", loaxa.AuditFilter{Limit: 2, Newest: true}, []uint64{6, 5}},
		{"newest first within a subtree and a time range", loaxa.AuditFilter{Within: "hp", From: at(1), To: at(6), Newest: true}, []uint64{6, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.FindAudit(ctx, tt.f)
			must(t, err)
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if len(seqs) != len(tt.want) {
				t.Fatalf("seqs %v, want %v", seqs, tt.want)
			}
			for i := range seqs {
				if seqs[i] != tt.want[i] {
					t.Fatalf("seqs %v, want %v", seqs, tt.want)
				}
			}
		})
	}

	got, err := s.FindAudit(ctx, loaxa.AuditFilter{Actor: "can-bo"})
	must(t, err)
	if len(got) != 1 || got[0].Detail != "priority=normal" || got[0].Target != "a000001" {
		t.Errorf("stored entry %+v", got)
	}
	_, err = s.FindAudit(ctx, loaxa.AuditFilter{Within: "nowhere"})
	wantCode(t, err, loaxa.ENotFound)
	wantCode(t, s.RecordAudit(ctx, &loaxa.AuditEntry{Action: "x"}), loaxa.EInvalid)
}

// The log outlives the process: a reopened store has every entry, and new
// ones continue the sequence.
func TestAuditService_SurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loaxa.db")
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		db := bolt.NewDB(path)
		must(t, db.Open())
		s := bolt.NewAuditService(db)
		e := &loaxa.AuditEntry{Actor: "admin", Action: "area.create", Target: "hp"}
		must(t, s.RecordAudit(ctx, e))
		if e.Seq != uint64(round) {
			t.Errorf("round %d: seq %d", round, e.Seq)
		}
		got, err := s.FindAudit(ctx, loaxa.AuditFilter{})
		must(t, err)
		if len(got) != round {
			t.Errorf("round %d: %d entries", round, len(got))
		}
		must(t, db.Close())
	}
}

// BenchmarkRecordAudit measures appending one audit entry: one bbolt
// commit (and fsync) per state-changing request.
func BenchmarkRecordAudit(b *testing.B) {
	db, _ := MustOpenDB(b)
	s := bolt.NewAuditService(db)
	ctx := context.Background()
	for b.Loop() {
		if err := s.RecordAudit(ctx, &loaxa.AuditEntry{Actor: "admin", Action: "announcement.create", Target: "a000001", Area: "12346", Remote: "10.0.0.1:5000"}); err != nil {
			b.Fatal(err)
		}
	}
}

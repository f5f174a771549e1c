package bolt_test

import (
	"context"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestStandingService: standing content is stored by content id with its
// areas sorted and once each; [] forgets it; content that does not exist,
// or an id that is none, is refused.
func TestStandingService(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	areas := bolt.NewAreaService(db)
	for _, a := range []loaxa.Area{{ID: "31", Name: "Hải Phòng"}, {ID: "12346", Name: "Tiên Thắng", Parent: "31"}} {
		if err := areas.CreateArea(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	id := strings.Repeat("ab", 32)
	if _, err := bolt.NewContentService(db).CreateContent(ctx, &loaxa.Content{ID: id, Title: "Cảnh báo lũ", Size: 1000}); err != nil {
		t.Fatal(err)
	}
	s := bolt.NewStandingService(db)
	got, err := s.SetStanding(ctx, id, []string{"31", "12346", "31"}, "can-bo")
	if err != nil || got.Content != id || strings.Join(got.Areas, ",") != "12346,31" || got.By != "can-bo" || got.At.IsZero() {
		t.Fatalf("SetStanding: %+v, %v", got, err)
	}
	if all, err := s.FindStanding(ctx); err != nil || len(all) != 1 || strings.Join(all[0].Areas, ",") != "12346,31" {
		t.Fatalf("FindStanding: %+v, %v", all, err)
	}
	if got, err := s.SetStanding(ctx, id, []string{}, "can-bo"); err != nil || got != nil {
		t.Fatalf("SetStanding([]): %+v, %v", got, err)
	}
	if all, err := s.FindStanding(ctx); err != nil || len(all) != 0 {
		t.Fatalf("after []: %+v, %v", all, err)
	}
	if _, err := s.SetStanding(ctx, strings.Repeat("cd", 32), []string{"31"}, "x"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("unknown content: %v, want not found", err)
	}
	if _, err := s.SetStanding(ctx, "not-an-id", []string{"31"}, "x"); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("not an id: %v, want invalid", err)
	}
}

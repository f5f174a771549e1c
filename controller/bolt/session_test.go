package bolt_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestConcurrentTwinSessionsStoreOne: the check against a second session
// at the same start ran before the store's transaction, so two identical
// requests at one instant both passed it and stored twins. The check is in
// the transaction: of 8 identical creates at once exactly one is stored,
// and the others fail with a *loaxa.SessionOverlapError (EConflict) naming
// it.
func TestConcurrentTwinSessionsStoreOne(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "318", "")
	mustArea(t, db, "12346", "318")
	s := bolt.NewSessionService(db)

	const n = 8
	sessions := make([]*loaxa.Session, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		sessions[i] = &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15}
		wg.Go(func() {
			<-start
			errs[i] = s.CreateSession(ctx, sessions[i])
		})
	}
	close(start)
	wg.Wait()

	var stored string
	for i, err := range errs {
		if err == nil {
			if stored != "" {
				t.Errorf("stored %s and %s: twins", stored, sessions[i].ID)
			}
			stored = sessions[i].ID
		}
	}
	if stored == "" {
		t.Fatalf("none stored: %v", errs)
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		var overlap *loaxa.SessionOverlapError
		if !errors.As(err, &overlap) || loaxa.ErrorCode(err) != loaxa.EConflict || overlap.Session.ID != stored {
			t.Errorf("refused with %v, want a conflict naming %s", err, stored)
		}
	}
	ss, err := s.FindSessions(ctx, loaxa.SessionFilter{})
	must(t, err)
	if len(ss) != 1 {
		t.Errorf("%d sessions stored, want 1", len(ss))
	}
}

// TestSessionOverlapIsCheckedPerArea: a session overlapping another of its
// own area is refused in the store; the same times in a neighbouring
// commune, or in the district above (whose sessions its own officers
// keep), are another station's.
func TestSessionOverlapIsCheckedPerArea(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "318", "")
	mustArea(t, db, "12346", "318")
	mustArea(t, db, "12347", "318")
	s := bolt.NewSessionService(db)
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 30}))
	err := s.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Bản tin tối", Start: "17:15", MaxMinutes: 30})
	wantCode(t, err, loaxa.EConflict)
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "12347", Name: "Buổi chiều", Start: "17:15", MaxMinutes: 30}))
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "318", Name: "Buổi huyện", Start: "17:15", MaxMinutes: 30}))
}

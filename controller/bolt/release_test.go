package bolt_test

import (
	"context"
	"slices"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// mustRollout stores a rollout of 2.0 in state, with unreached nodes
// counted unreached, and returns its id.
func mustRollout(t *testing.T, s *bolt.ReleaseService, state string, unreached int) string {
	t.Helper()
	ctx := context.Background()
	ro := &loaxa.Rollout{Version: "2.0", Percent: 100, Canaries: 1, State: loaxa.RolloutCanary, CreatedBy: "admin"}
	must(t, s.CreateRollout(ctx, ro))
	_, err := s.UpdateRollout(ctx, ro.ID, func(x *loaxa.Rollout) error {
		x.State, x.Unreached = state, unreached
		x.Nodes = []loaxa.RolloutNode{{Node: "n1", Canary: true, State: loaxa.RolloutNodeUpdated}}
		for range unreached {
			x.Nodes = append(x.Nodes, loaxa.RolloutNode{Node: "n2", State: loaxa.RolloutNodeUnreached})
		}
		return nil
	})
	must(t, err)
	return ro.ID
}

func rolloutIDs(ros []*loaxa.Rollout) []string {
	var ids []string
	for _, r := range ros {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestFindRunningRolloutsReadsOnlyThose: the rollout runner looked at
// every stored rollout every 2 s, decoding a province's year of finished
// ones to find the one or two still running. The running rollouts
// (active, or done and waiting for nodes they did not reach) are found
// with every other record damaged, so never read; a rollout that stops
// running leaves the index.
func TestFindRunningRolloutsReadsOnlyThose(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewReleaseService(db)
	ctx := context.Background()
	done := mustRollout(t, s, loaxa.RolloutDone, 0)
	halted := mustRollout(t, s, loaxa.RolloutHalted, 0)
	rolling := mustRollout(t, s, loaxa.RolloutRolling, 0)
	waiting := mustRollout(t, s, loaxa.RolloutDone, 2)
	canary := mustRollout(t, s, loaxa.RolloutCanary, 0)
	over := mustRollout(t, s, loaxa.RolloutCanary, 0)
	_, err := s.UpdateRollout(ctx, over, func(x *loaxa.Rollout) error {
		x.State = loaxa.RolloutDone
		return nil
	})
	must(t, err)
	for _, id := range []string{done, halted, over} {
		repair, err := bolt.DamageRollout(db, id)
		must(t, err)
		defer func() { must(t, repair()) }()
	}
	if _, err := s.FindRollouts(ctx, loaxa.RolloutFilter{}); err == nil {
		t.Fatal("every rollout found with three records damaged: the test would not see them read")
	}
	ros, err := s.FindRollouts(ctx, loaxa.RolloutFilter{Running: true})
	must(t, err)
	if got, want := rolloutIDs(ros), []string{rolling, waiting, canary}; !slices.Equal(got, want) {
		t.Errorf("running rollouts %q, want %q, oldest first", got, want)
	}
}

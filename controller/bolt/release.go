package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// Buckets of releases and rollouts, created on first write (so that
// stores from before them open unchanged):
//
//	releases   version → Release
//	rollouts   rollout id → Rollout
//
// and their index, created by Open (schema 6):
//
//	rollouts_running  rollout id → nil, of the rollouts still asking nodes
//	                  (Rollout.Running): what the runner reads every 2 s
var (
	bucketReleases        = []byte("releases")
	bucketRollouts        = []byte("rollouts")
	bucketRolloutsRunning = []byte("rollouts_running")
)

// ReleaseService stores agent releases and their rollouts.
type ReleaseService struct {
	db *DB
}

var _ loaxa.ReleaseService = (*ReleaseService)(nil)

// NewReleaseService returns a ReleaseService on db.
func NewReleaseService(db *DB) *ReleaseService { return &ReleaseService{db: db} }

// PutReleaseArchive adds a to release version.
func (s *ReleaseService) PutReleaseArchive(ctx context.Context, version string, a loaxa.ReleaseArchive, by string) (*loaxa.Release, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var rel loaxa.Release
	err := s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketReleases)
		if err != nil {
			return err
		}
		found, err := getJSON(b, []byte(version), &rel)
		if err != nil {
			return err
		}
		if !found {
			rel = loaxa.Release{Version: version, CreatedBy: by, CreatedAt: s.db.now()}
		}
		for _, x := range rel.Archives {
			if x.Arch == a.Arch {
				return loaxa.Errorf(loaxa.EConflict, "Release %s already has an archive for %s; give the new build a new version.", version, a.Arch)
			}
		}
		rel.Archives = append(rel.Archives, a)
		return putJSON(b, []byte(version), &rel)
	})
	if err != nil {
		return nil, fmt.Errorf("put release %s: %w", version, err)
	}
	return &rel, nil
}

// FindReleaseByVersion returns a release or ENotFound.
func (s *ReleaseService) FindReleaseByVersion(ctx context.Context, version string) (*loaxa.Release, error) {
	var rel loaxa.Release
	found := false
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketReleases)
		if b == nil {
			return nil
		}
		var err error
		found, err = getJSON(b, []byte(version), &rel)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find release %s: %w", version, err)
	}
	if !found {
		return nil, loaxa.Errorf(loaxa.ENotFound, "Release %q does not exist; upload it with POST /api/v1/releases.", version)
	}
	return &rel, nil
}

// FindReleases returns every release, newest first.
func (s *ReleaseService) FindReleases(ctx context.Context) ([]*loaxa.Release, error) {
	var out []*loaxa.Release
	err := s.db.view(func(tx *bbolt.Tx) error {
		return forEachJSON(tx, bucketReleases, func(r *loaxa.Release) { out = append(out, r) })
	})
	if err != nil {
		return nil, fmt.Errorf("find releases: %w", err)
	}
	slices.SortFunc(out, func(a, b *loaxa.Release) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// ReleaseArchiveKnown reports whether a release lists the archive.
func (s *ReleaseService) ReleaseArchiveKnown(ctx context.Context, sha string) (bool, error) {
	rels, err := s.FindReleases(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range rels {
		for _, a := range r.Archives {
			if a.SHA256 == sha {
				return true, nil
			}
		}
	}
	return false, nil
}

// CreateRollout stores r with a new id (r000001, …).
func (s *ReleaseService) CreateRollout(ctx context.Context, r *loaxa.Rollout) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = fmt.Sprintf("r%06d", seq)
		r.CreatedAt = s.db.now()
		r.UpdatedAt = r.CreatedAt
		if err := putJSON(b, []byte(r.ID), r); err != nil {
			return err
		}
		return indexRolloutRunning(tx, r)
	})
	if err != nil {
		return fmt.Errorf("create rollout: %w", err)
	}
	return nil
}

// UpdateRollout applies fn to the stored rollout.
func (s *ReleaseService) UpdateRollout(ctx context.Context, id string, fn func(*loaxa.Rollout) error) (*loaxa.Rollout, error) {
	var r loaxa.Rollout
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return loaxa.Errorf(loaxa.ENotFound, "Rollout %q does not exist.", id)
		}
		found, err := getJSON(b, []byte(id), &r)
		if err != nil {
			return err
		}
		if !found {
			return loaxa.Errorf(loaxa.ENotFound, "Rollout %q does not exist.", id)
		}
		if err := fn(&r); err != nil {
			return err
		}
		r.ID, r.UpdatedAt = id, s.db.now()
		if err := putJSON(b, []byte(id), &r); err != nil {
			return err
		}
		return indexRolloutRunning(tx, &r)
	})
	if err != nil {
		return nil, fmt.Errorf("update rollout %s: %w", id, err)
	}
	return &r, nil
}

// FindRolloutByID returns a rollout or ENotFound.
func (s *ReleaseService) FindRolloutByID(ctx context.Context, id string) (*loaxa.Rollout, error) {
	var r loaxa.Rollout
	found := false
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return nil
		}
		var err error
		found, err = getJSON(b, []byte(id), &r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find rollout %s: %w", id, err)
	}
	if !found {
		return nil, loaxa.Errorf(loaxa.ENotFound, "Rollout %q does not exist.", id)
	}
	return &r, nil
}

// indexRolloutRunning keeps r in rollouts_running while it runs.
func indexRolloutRunning(tx *bbolt.Tx, r *loaxa.Rollout) error {
	running := tx.Bucket(bucketRolloutsRunning)
	if !r.Running() {
		return running.Delete([]byte(r.ID))
	}
	return running.Put([]byte(r.ID), nil)
}

// indexRunningRollouts (schema 5 → 6) indexes the rollouts still asking
// nodes, which the runner reads instead of every rollout.
func indexRunningRollouts(tx *bbolt.Tx, step *upgradeStep) error {
	b := tx.Bucket(bucketRollouts)
	if b == nil {
		return nil // no rollout yet
	}
	return b.ForEach(func(k, v []byte) error {
		step.read()
		if v == nil {
			return nil
		}
		var r loaxa.Rollout
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode rollout %q: %w", k, err)
		}
		r.ID = string(k)
		return indexRolloutRunning(tx, &r)
	})
}

// FindRollouts returns the rollouts f selects, oldest first. The running
// ones are read through their index: a year's finished rollouts are not
// decoded every pass of the runner.
func (s *ReleaseService) FindRollouts(ctx context.Context, f loaxa.RolloutFilter) ([]*loaxa.Rollout, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Rollout
	err := s.db.view(func(tx *bbolt.Tx) error {
		if !f.Running {
			return forEachJSON(tx, bucketRollouts, func(r *loaxa.Rollout) { out = append(out, r) })
		}
		b := tx.Bucket(bucketRollouts)
		return tx.Bucket(bucketRolloutsRunning).ForEach(func(k, _ []byte) error {
			var r loaxa.Rollout
			found := false
			if b != nil {
				var err error
				if found, err = getJSON(b, k, &r); err != nil {
					return err
				}
			}
			if !found {
				return fmt.Errorf("running rollouts: %q points to a missing rollout", k)
			}
			out = append(out, &r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find rollouts: %w", err)
	}
	return out, nil
}

// forEachJSON decodes every value of a bucket that may not exist yet.
func forEachJSON[T any](tx *bbolt.Tx, name []byte, fn func(*T)) error {
	b := tx.Bucket(name)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var x T
		if _, err := getJSON(b, k, &x); err != nil {
			return err
		}
		fn(&x)
		return nil
	})
}

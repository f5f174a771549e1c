package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// CapService stores received CAP alerts (loaxa.CapStore).
type CapService struct {
	db *DB
}

var _ loaxa.CapStore = (*CapService)(nil)

// NewCapService returns a CapService on db.
func NewCapService(db *DB) *CapService { return &CapService{db: db} }

var (
	keyCapAutoStart  = []byte("_auto_start") // not an id: ids start with c
	keyCapRecordings = []byte("_recordings")
	capKeyPrefix     = "key:" // by-key index entries in the same bucket
	// By-reference index entries, in the same bucket too:
	// "ref:" + referenced key + "\x00" + id of the alert that references it.
	capRefPrefix = "ref:"
)

// capRefKey is the by-reference index entry of alert id referencing key.
func capRefKey(key, id string) []byte { return []byte(capRefPrefix + key + "\x00" + id) }

// putCapRefs indexes the references of a.
func putCapRefs(b *bbolt.Bucket, a *loaxa.CapAlert) error {
	for _, ref := range a.References {
		if err := b.Put(capRefKey(ref, a.ID), []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// indexCapReferences (schema 2 → 3) indexes the references of the CAP
// alerts stored before the by-reference index, so that an alert that
// comes after its own Update or Cancel finds them.
func indexCapReferences(tx *bbolt.Tx, step *upgradeStep) error {
	b := tx.Bucket(bucketCapAlerts)
	var all []*loaxa.CapAlert
	err := b.ForEach(func(k, v []byte) error {
		step.read()
		if len(k) == 0 || k[0] != 'c' {
			return nil
		}
		var a loaxa.CapAlert
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("CAP alert %s: %w", k, err)
		}
		all = append(all, &a)
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range all {
		if err := putCapRefs(b, a); err != nil {
			return err
		}
	}
	return nil
}

// markWithdrawnCapAlerts (schema 10 → 11) marks the CAP alerts that a
// later Cancel or Update withdrew before a record said so (Withdrawn), so
// that GET /api/v1/cap tells an officer reading it after the storm which
// warnings were called off, not "play" as if they still sounded. What
// withdrew what follows from the records, by the rules the controller
// withdraws by (controller/http withdrawCap): the alerts a stored Cancel
// or Update references, of the same status (an Exercise withdraws only
// exercises); the first that withdrew one stays. A sounding alert is
// withdrawn by a Cancel when it came, and by an Update when it played or
// was recorded (at once), when it was approved, or when it came after a
// Cancel or Update of itself (withdrawn as it came, it withdrew what it
// references then); an Update still waiting, or withdrawn while it
// waited, left it sounding, and it is left unmarked. An alert that did
// not sound (recorded only, no emergency) is withdrawn by either when it
// came. An alert waiting for approval is withdrawn when
// the Cancel or Update came (its action is then cancelled), or when it
// came itself, after them. An alert received after a Cancel of it that
// still played (a controller older than that rule) is left unmarked: it
// did sound. When is the withdrawing alert's arrival (or approval), which
// is when the emergencies were stopped, to the second.
func markWithdrawnCapAlerts(tx *bbolt.Tx, step *upgradeStep) error {
	b := tx.Bucket(bucketCapAlerts)
	// Only what decides a withdrawal is kept of each record: a year of a
	// national feed's alerts, each with its XML, need not be in memory
	// at once (BenchmarkOpenMarksWithdrawnCapAlerts).
	var all []*capBrief
	byKey := map[string]*capBrief{}
	err := b.ForEach(func(k, v []byte) error {
		step.read()
		if len(k) == 0 || k[0] != 'c' {
			return nil // the key and reference indexes, the lists
		}
		var a capBrief
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("CAP alert %s: %w", k, err)
		}
		all = append(all, &a)
		byKey[a.Key] = &a
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b *capBrief) int { return capAge(a.ID, b.ID) }) // oldest first
	var marked []*capBrief
	for _, w := range all {
		if w.MsgType != "Cancel" && w.MsgType != "Update" {
			continue
		}
		for _, ref := range w.References {
			old := byKey[ref]
			if old == nil || old == w || old.Withdrawn != nil || old.Status != w.Status {
				continue
			}
			at, ok := capWithdrawnAt(old, w)
			if !ok {
				continue
			}
			old.Withdrawn = &loaxa.CapWithdrawal{By: w.ID, Key: w.Key, MsgType: w.MsgType, At: at}
			marked = append(marked, old)
		}
	}
	for _, m := range marked {
		var a loaxa.CapAlert
		if _, err := getJSON(b, []byte(m.ID), &a); err != nil {
			return fmt.Errorf("CAP alert %s: %w", m.ID, err)
		}
		a.Withdrawn = m.Withdrawn
		if err := putJSON(b, []byte(a.ID), &a); err != nil {
			return err
		}
	}
	return nil
}

// capBrief is what markWithdrawnCapAlerts reads of a stored CAP alert.
type capBrief struct {
	ID         string               `json:"id"`
	Key        string               `json:"key"`
	Status     string               `json:"status"`
	MsgType    string               `json:"msg_type"`
	References []string             `json:"references"`
	Action     string               `json:"action"`
	Emergency  string               `json:"emergency"`
	ReceivedAt time.Time            `json:"received_at"`
	ApprovedAt time.Time            `json:"approved_at"`
	Withdrawn  *loaxa.CapWithdrawal `json:"withdrawn"`
}

// capAge orders CAP alert ids as they were made: c000009 before c000010,
// c999999 before c1000000.
func capAge(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) }

// capWithdrawnAt says whether w (a Cancel or Update referencing old, of
// its status) withdrew old, and when (markWithdrawnCapAlerts). The actions
// are controller/cap's and the approval's, which this package does not
// import.
func capWithdrawnAt(old, w *capBrief) (time.Time, bool) {
	after := capAge(old.ID, w.ID) > 0
	switch {
	case old.Action == "pending":
		return time.Time{}, false // still waits: nothing withdrew it
	case old.Action == "cancelled" && after:
		return old.ReceivedAt, true // withdrawn as it came, after w
	case old.Action == "cancelled":
		return w.ReceivedAt, true // its wait ended when w came
	case after:
		return time.Time{}, false // came after w and was not withdrawn: it sounded
	case w.MsgType == "Cancel":
		return w.ReceivedAt, true
	case old.Emergency == "":
		return w.ReceivedAt, true // it did not sound: withdrawn as w came
	}
	switch w.Action { // an Update of a sounding alert
	case "approved":
		if w.ApprovedAt.IsZero() {
			return w.ReceivedAt, true
		}
		return w.ApprovedAt, true
	case "pending":
		return time.Time{}, false // waiting, it left old sounding
	case "cancelled":
		// Withdrawn as it came, by an alert older than itself (its own
		// Cancel or Update came first: marked so by now, as the alerts are
		// taken oldest first), it withdrew old then; withdrawn while it
		// waited, it left old sounding.
		if ww := w.Withdrawn; ww != nil && ww.By != "" && capAge(ww.By, w.ID) < 0 {
			return w.ReceivedAt, true
		}
		return time.Time{}, false
	}
	return w.ReceivedAt, true
}

func capNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "There is no CAP alert %q; list them with GET /api/v1/cap.", id)
}

// CreateCapAlert implements loaxa.CapStore.
func (s *CapService) CreateCapAlert(ctx context.Context, a *loaxa.CapAlert) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCapAlerts)
		if b.Get([]byte(capKeyPrefix+a.Key)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "CAP alert %s was received before.", a.Key)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.ID = fmt.Sprintf("c%06d", seq)
		if err := b.Put([]byte(capKeyPrefix+a.Key), []byte(a.ID)); err != nil {
			return err
		}
		if err := putCapRefs(b, a); err != nil {
			return err
		}
		return putJSON(b, []byte(a.ID), a)
	})
	if err != nil {
		return fmt.Errorf("store CAP alert %s: %w", a.Key, err)
	}
	return nil
}

// FindCapAlertByKey implements loaxa.CapStore.
func (s *CapService) FindCapAlertByKey(ctx context.Context, key string) (*loaxa.CapAlert, error) {
	var id []byte
	if err := s.db.view(func(tx *bbolt.Tx) error {
		id = slices.Clone(tx.Bucket(bucketCapAlerts).Get([]byte(capKeyPrefix + key)))
		return nil
	}); err != nil {
		return nil, err
	}
	if id == nil {
		return nil, capNotFound(key)
	}
	return s.FindCapAlertByID(ctx, string(id))
}

// FindCapAlertByID implements loaxa.CapStore.
func (s *CapService) FindCapAlertByID(ctx context.Context, id string) (*loaxa.CapAlert, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var a loaxa.CapAlert
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketCapAlerts), []byte(id), &a)
		if err == nil && (!ok || len(id) > 0 && id[0] != 'c') {
			return capNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find CAP alert %s: %w", id, err)
	}
	return &a, nil
}

// UpdateCapAlert implements loaxa.CapStore.
func (s *CapService) UpdateCapAlert(ctx context.Context, id string, fn func(a *loaxa.CapAlert) error) (*loaxa.CapAlert, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var a loaxa.CapAlert
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCapAlerts)
		ok, err := getJSON(b, []byte(id), &a)
		if err != nil {
			return err
		} else if !ok {
			return capNotFound(id)
		}
		if err := fn(&a); err != nil {
			return err
		}
		return putJSON(b, []byte(id), &a)
	})
	if err != nil {
		return nil, fmt.Errorf("update CAP alert %s: %w", id, err)
	}
	return &a, nil
}

// FindCapAlerts implements loaxa.CapStore.
func (s *CapService) FindCapAlerts(ctx context.Context, limit int) ([]*loaxa.CapAlert, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.CapAlert
	err := s.db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCapAlerts).ForEach(func(k, v []byte) error {
			if len(k) == 0 || k[0] != 'c' {
				return nil // the key index, the auto-start list
			}
			var a loaxa.CapAlert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("CAP alert %s: %w", k, err)
			}
			out = append(out, &a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find CAP alerts: %w", err)
	}
	slices.SortFunc(out, func(a, b *loaxa.CapAlert) int {
		return cmp.Or(cmp.Compare(len(b.ID), len(a.ID)), cmp.Compare(b.ID, a.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// FindCapAlertsReferencing implements loaxa.CapStore.
func (s *CapService) FindCapAlertsReferencing(ctx context.Context, key string) ([]*loaxa.CapAlert, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.CapAlert
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCapAlerts)
		prefix := []byte(capRefPrefix + key + "\x00")
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var a loaxa.CapAlert
			ok, err := getJSON(b, k[len(prefix):], &a)
			if err != nil {
				return err
			} else if ok {
				out = append(out, &a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find CAP alerts referencing %s: %w", key, err)
	}
	slices.SortFunc(out, func(a, b *loaxa.CapAlert) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// CapAutoStart implements loaxa.CapStore.
func (s *CapService) CapAutoStart(ctx context.Context) ([]string, error) {
	events := []string{}
	err := s.db.view(func(tx *bbolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketCapAlerts), keyCapAutoStart, &events)
		return err
	})
	return events, err
}

// CapRecordings implements loaxa.CapStore.
func (s *CapService) CapRecordings(ctx context.Context) (map[string]string, error) {
	recordings := map[string]string{}
	err := s.db.view(func(tx *bbolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketCapAlerts), keyCapRecordings, &recordings)
		return err
	})
	return recordings, err
}

// SetCapRecordings implements loaxa.CapStore.
func (s *CapService) SetCapRecordings(ctx context.Context, recordings map[string]string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bucketCapAlerts), keyCapRecordings, recordings)
	})
}

// SetCapAutoStart implements loaxa.CapStore.
func (s *CapService) SetCapAutoStart(ctx context.Context, events []string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bucketCapAlerts), keyCapAutoStart, events)
	})
}

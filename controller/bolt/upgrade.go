package bolt

import (
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Upgrade is how far Open has brought a store of an older schema: the
// step under way, which reads the records of one bucket. DB.Upgrading
// hears it, and the log says it, so that a technician watching a long
// start sees an upgrade, not a hang.
type Upgrade struct {
	From  uint64 // the step brings the store from schema From to From+1
	To    uint64 // the schema the upgrade ends at
	What  string // what the step does
	Read  int    // records of the step read so far
	Total int    // records the step reads; while Counting, those counted so far
	// Counting says the step is counting its records, before it reads
	// them: the estimate needs their number.
	Counting bool
	// Elapsed is the time since the step began counting, or reading once
	// it has counted.
	Elapsed time.Duration
}

// Left estimates the time the step still takes, from its pace so far; 0
// when it cannot tell yet.
func (u Upgrade) Left() time.Duration {
	if u.Counting || u.Read == 0 || u.Total <= u.Read {
		return 0
	}
	return time.Duration(float64(u.Elapsed) / float64(u.Read) * float64(u.Total-u.Read))
}

// String says it for a status line: "store upgrade: schema 3 → 4 of 7
// (index of open deliveries): 1200000 of 4000000 records, about 40s left".
func (u Upgrade) String() string {
	s := fmt.Sprintf("store upgrade: schema %d → %d of %d (%s)", u.From, u.From+1, u.To, u.What)
	switch {
	case u.Counting:
		return fmt.Sprintf("%s: counting records, %d so far", s, u.Total)
	case u.Read == 0:
		return fmt.Sprintf("%s: %d records to read", s, u.Total)
	}
	s = fmt.Sprintf("%s: %d of %d records", s, u.Read, u.Total)
	if left := u.Left(); left > 0 {
		s += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	return s
}

// migration brings a store of one schema to the next.
type migration struct {
	what   string
	bucket []byte // the bucket whose records it reads one by one (the progress)
	run    func(tx *bbolt.Tx, step *upgradeStep) error
}

// Pace of the upgrade's reports.
const (
	upgradeReportEvery = 1024            // records between two reports to DB.Upgrading
	upgradeLogEvery    = 5 * time.Second // between two progress lines in the log
)

// upgradeStep counts the records one migration reads and reports them.
type upgradeStep struct {
	db     *DB
	u      Upgrade
	began  time.Time
	logged time.Time
}

// upgrade runs migrations from schema from up to schemaVersion in tx,
// reporting as it goes.
func (db *DB) upgrade(tx *bbolt.Tx, from uint64) error {
	began := time.Now()
	for v := from; v < schemaVersion; v++ {
		m := migrations[v]
		step := &upgradeStep{db: db, u: Upgrade{From: v, To: schemaVersion, What: m.what}, began: time.Now()}
		if b := tx.Bucket(m.bucket); b != nil {
			step.count(b)
		} else {
			step.report(true) // nothing to read (a bucket made on first use)
		}
		if err := m.run(tx, step); err != nil {
			return fmt.Errorf("bring the store from schema %d to %d (%s): %w", v, v+1, m.what, err)
		}
		step.u.Total = max(step.u.Total, step.u.Read)
		step.report(true)
	}
	db.Logger.Info("store: schema upgraded; committing it", "schema", schemaVersion, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// count sets the step's total to the records of b, for the estimate: a
// walk of the keys, no record decoded (BenchmarkOpenUpgrade measures it).
// On a store larger than the memory the walk reads the file from the disk
// and can take minutes, so it reports as it goes, as the reading does
// (not Bucket.Stats, which says nothing until it is done).
func (s *upgradeStep) count(b *bbolt.Bucket) {
	s.u.Counting = true
	s.report(true)
	c := b.Cursor()
	n := 0
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
		if n%upgradeReportEvery == 0 {
			s.u.Total = n
			s.report(false)
		}
	}
	s.u.Total, s.u.Counting = n, false
	s.report(true)
	s.began = time.Now() // the estimate is of the reading, at its own pace
}

// read counts one record read.
func (s *upgradeStep) read() {
	s.u.Read++
	if s.u.Read%upgradeReportEvery == 0 {
		s.report(false)
	}
}

// report tells DB.Upgrading how far the step is, and the log when force
// is set or upgradeLogEvery has passed.
func (s *upgradeStep) report(force bool) {
	now := time.Now()
	s.u.Elapsed = now.Sub(s.began)
	if s.db.Upgrading != nil {
		s.db.Upgrading(s.u)
	}
	if force || now.Sub(s.logged) >= upgradeLogEvery {
		s.logged = now
		// Systemd has heard first (Upgrading): a log line can be slow.
		s.db.Logger.Info("store: upgrading the schema; the controller serves once it is done", "step", fmt.Sprintf("schema %d → %d of %d", s.u.From, s.u.From+1, s.u.To), "what", s.u.What,
			"counting", s.u.Counting, "read", s.u.Read, "total", s.u.Total, "elapsed", s.u.Elapsed.Round(time.Millisecond), "left", s.u.Left().Round(time.Second))
	}
}

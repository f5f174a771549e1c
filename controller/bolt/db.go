// Package bolt is the controller's durable store: every storage service of
// controller/loaxa on one bbolt file.
//
// Values are JSON (easy to read with bbolt's own tools when something looks
// wrong); keys are ids, or composite keys built so that the queries we need
// are prefix or range scans:
//
//	areas            area id → Area
//	area_parents     area id → parent id (small values, so subtree walks
//	                 do not decode whole areas)
//	nodes            node id → Node with its secret hash and status (the
//	                 status as of the last flush: nodestatus.go)
//	node_areas       area id \x00 node id → nil (nodes of one area)
//	contents         content id → Content
//	announcements    announcement id → Announcement
//	deliveries       announcement \x00 occurrence \x00 node → Delivery
//	node_deliveries  node \x00 announcement \x00 occurrence → primary key
//	open_deliveries  the same keys, of the pending and received deliveries
//	                 only → planned end, ms(8) (what DropDeliveries reads)
//	events           ms(8) node \x00 epoch \x00 seq(8) → Event (time order)
//	node_events      node \x00 ms(8) epoch \x00 seq(8) → events key
//	event_seqs       node \x00 epoch → last stored seq (8 bytes)
//	users            username → User with its password hash
//	tokens           SHA-256(token) → session
//	desired          node id → Desired
//	sessions         session id → Session
//	holidays         holiday id → Holiday
//	holiday_dates    area \x00 date → id of the holiday on the calendar: an
//	                 add's check for a twin (schema 10; holiday.go)
//	holiday_purge    ms(8) of the delete, id → nil, of the deleted holidays
//	                 that never stood on their day: what the purge removes
//	                 (schema 10)
//	proposals        proposal id → Proposal
//	keys             "signing" → current Ed25519 private key, "seq_floor" → uint64,
//	                 "ring" → every signing key and its state (KeyService)
//	audit            seq(8) → AuditEntry (append-only)
//	enrolments       SHA-256(enrolment code) → Enrolment (one-time)
//	alarms           seq(8) → Alarm (ids "al" + seq; newest last)
//	alarm_ends       ms(8) of the end (all ones while open), seq(8) → nil:
//	                 what a report over a time range reads (schema 7), and
//	                 the open alarms (the tail) that the lists read
//	alarm_spans      class of the length (bits of its ms), ms(8) of the
//	                 end, seq(8) → nil, of the ended alarms: what a report
//	                 over a time range reads of them (schema 8; alarm.go)
//	alarm_nodes      node, 0, state ('o' open, 'e' ended), seq(8) → nil,
//	alarm_areas      area, 0, state, seq(8) → nil: a cluster's and an
//	                 area's alarms, newest last, what the lists filtered
//	                 by node, area and state read (schema 9; alarm.go)
//	selftests        seq(8) → SelfTest with its results (ids "st" + seq)
//	live_calls       ms(8) of the start, call id → LiveCall (time order)
//	live_call_ids    call id → live_calls key
//	releases, rollouts, rollouts_running: release.go
//	meta             "schema" → schema version
//
// Every write runs in one bbolt Update transaction, so a failed call leaves
// nothing behind. The exception is a node's status, the soft state a node
// reports: it is changed in memory and written in batches (nodestatus.go).
package bolt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Bucket names.
var (
	bucketAreas          = []byte("areas")
	bucketAreaParents    = []byte("area_parents")
	bucketNodes          = []byte("nodes")
	bucketNodeAreas      = []byte("node_areas")
	bucketContents       = []byte("contents")
	bucketAnnouncements  = []byte("announcements")
	bucketDeliveries     = []byte("deliveries")
	bucketNodeDeliveries = []byte("node_deliveries")
	bucketOpenDeliveries = []byte("open_deliveries")
	bucketEvents         = []byte("events")
	bucketNodeEvents     = []byte("node_events")
	bucketEventSeqs      = []byte("event_seqs")
	bucketUsers          = []byte("users")
	bucketTokens         = []byte("tokens")
	bucketDesired        = []byte("desired")
	bucketDesiredHeads   = []byte("desired_heads") // node → its desired state's hash, version, published
	bucketKeys           = []byte("keys")
	bucketMeta           = []byte("meta")
	bucketAudit          = []byte("audit")
	bucketEnrolments     = []byte("enrolments")
	bucketSessions       = []byte("sessions")
	bucketHolidays       = []byte("holidays")
	bucketHolidayDates   = []byte("holiday_dates") // area \x00 date → id of the holiday on the calendar
	bucketHolidayPurge   = []byte("holiday_purge") // ms(8) of the delete, id → nil: deleted ones to purge
	bucketProposals      = []byte("proposals")
	bucketAlarms         = []byte("alarms")
	bucketAlarmEnds      = []byte("alarm_ends")
	bucketAlarmSpans     = []byte("alarm_spans")
	bucketAlarmNodes     = []byte("alarm_nodes")
	bucketAlarmAreas     = []byte("alarm_areas")
	bucketSelfTests      = []byte("selftests")
	bucketEmergencies    = []byte("emergencies")
	bucketCapAlerts      = []byte("cap_alerts")
	bucketLiveCalls      = []byte("live_calls")
	bucketLiveCallIDs    = []byte("live_call_ids")
	bucketLiveCallsOnAir = []byte("live_calls_on_air") // id → key of the calls not ended
	bucketStanding       = []byte("standing")

	allBuckets = [][]byte{
		bucketAreas, bucketAreaParents, bucketNodes, bucketNodeAreas,
		bucketContents, bucketAnnouncements, bucketDeliveries,
		bucketNodeDeliveries, bucketOpenDeliveries, bucketEvents, bucketNodeEvents, bucketEventSeqs,
		bucketUsers, bucketTokens, bucketDesired, bucketDesiredHeads, bucketKeys, bucketMeta,
		bucketAudit, bucketEnrolments,
		bucketSessions, bucketHolidays, bucketHolidayDates, bucketHolidayPurge, bucketProposals,
		bucketAlarms, bucketAlarmEnds, bucketAlarmSpans, bucketAlarmNodes, bucketAlarmAreas, bucketSelfTests,
		bucketEmergencies, bucketCapAlerts,
		bucketLiveCalls, bucketLiveCallIDs, bucketLiveCallsOnAir,
		bucketStanding,
		bucketRolloutsRunning,
	}

	keySigning  = []byte("signing")
	keySeqFloor = []byte("seq_floor")
	keySchema   = []byte("schema")
)

// schemaVersion is the layout this code reads and writes. A file written by
// a newer layout is refused rather than misread; an older one is brought up
// to date by Open, in the transaction that reads the version (migrations).
const schemaVersion = 11

// migrations[v] brings a store of schema v to v+1 (upgrade.go).
var migrations = map[uint64]migration{
	1:  {"mark the deliveries of drills", bucketEmergencies, markDrillDeliveries},
	2:  {"index of CAP references", bucketCapAlerts, indexCapReferences},
	3:  {"index of open deliveries", bucketDeliveries, indexOpenDeliveries},
	4:  {"index of live calls on air", bucketLiveCalls, indexLiveCallsOnAir},
	5:  {"index of running rollouts", bucketRollouts, indexRunningRollouts},
	6:  {"index of alarm ends", bucketAlarms, indexAlarmEnds},
	7:  {"index of alarm spans", bucketAlarms, indexAlarmSpans},
	8:  {"index of alarms by node and area", bucketAlarms, indexAlarmPlaces},
	9:  {"index of holidays by date and by delete", bucketHolidays, indexHolidays},
	10: {"mark the CAP alerts a later Cancel or Update withdrew", bucketCapAlerts, markWithdrawnCapAlerts},
}

// markDrillDeliveries (schema 1 → 2) marks the deliveries of drill
// emergencies stored before a delivery carried the mark, so that reports
// over that time count those exercises as drills, not as emergencies.
func markDrillDeliveries(tx *bbolt.Tx, step *upgradeStep) error {
	deliveries := tx.Bucket(bucketDeliveries)
	return tx.Bucket(bucketEmergencies).ForEach(func(k, v []byte) error {
		step.read()
		if v == nil {
			return nil
		}
		var em struct {
			Drill bool `json:"drill"`
		}
		if err := json.Unmarshal(v, &em); err != nil {
			return fmt.Errorf("emergency %q: %w", k, err)
		}
		if !em.Drill {
			return nil
		}
		prefix := append(slices.Clone(k), 0)
		var marked []*loaxa.Delivery
		c := deliveries.Cursor()
		for dk, dv := c.Seek(prefix); dk != nil && bytes.HasPrefix(dk, prefix); dk, dv = c.Next() {
			var d loaxa.Delivery
			if err := json.Unmarshal(dv, &d); err != nil {
				return fmt.Errorf("delivery %q: %w", dk, err)
			}
			if !d.Drill {
				d.Drill = true
				marked = append(marked, &d)
			}
		}
		for _, d := range marked {
			if err := putJSON(deliveries, deliveryKey(d.Announcement, d.Occurrence, d.Node), d); err != nil {
				return err
			}
		}
		return nil
	})
}

// DefaultOpenTimeout is how long Open waits for the file lock by default.
const DefaultOpenTimeout = 2 * time.Second

// DB is the controller's bbolt file. Set Now and Logger before Open.
type DB struct {
	db    *bbolt.DB
	path  string
	group group

	// Now returns the current time; it stamps CreatedAt fields and expires
	// tokens. Defaults to time.Now.
	Now func() time.Time
	// Logger receives storage diagnostics. Defaults to slog.Default().
	Logger *slog.Logger
	// OpenTimeout bounds the wait for the file lock, so that a second
	// controller on the same data directory fails instead of hanging.
	OpenTimeout time.Duration
	// Upgrading, if set, hears how far Open is bringing a store of an
	// older schema up to date (upgrade.go): at each step's start and end,
	// and every few records. It runs inside Open's transaction, so it
	// must not use the DB; it may tell systemd the start goes on.
	Upgrading func(Upgrade)
	// StatusInterval is how often node statuses changed in memory are
	// written to the file (nodestatus.go): 0 means DefaultStatusInterval,
	// a negative value only on Snapshot and Close.
	StatusInterval time.Duration
	// StatusChunk is the most node statuses one transaction of a status
	// flush writes: 0 means DefaultStatusChunk.
	StatusChunk int
	// StatusHold, if set, reports whether a periodic status flush that is
	// due should wait: it waits while StatusHold is true, at most
	// MaxStatusHold. The controller passes gcpause.Held, true while an
	// alert fans out (nodestatus.go). Set before Open.
	StatusHold func() bool

	nodes       nodeTable
	deliveries  deliveryCache         // decoded deliveries of announcements (deliverycache.go)
	flushStop   chan struct{}         // closed by Close: the flusher stops
	flushDone   chan struct{}         // closed by the flusher when it stopped
	statusFault func(*bbolt.Tx) error // tests: runs first in a status flush's transaction
	// tests: runs between a credentials write's commit and its copy in memory
	credentialsCommitted func()
}

// NewDB returns a DB for the file at path; Open opens it.
func NewDB(path string) *DB {
	return &DB{path: path, Now: time.Now, Logger: slog.Default(), OpenTimeout: DefaultOpenTimeout}
}

// Path returns the file path of the database.
func (db *DB) Path() string { return db.path }

// Open opens or creates the file and its buckets.
func (db *DB) Open() error {
	if db.path == "" {
		return fmt.Errorf("open store: path required")
	}
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.Logger == nil {
		db.Logger = slog.Default()
	}
	if db.OpenTimeout <= 0 {
		db.OpenTimeout = DefaultOpenTimeout
	}
	b, err := bbolt.Open(db.path, 0o600, &bbolt.Options{Timeout: db.OpenTimeout})
	if err != nil {
		return fmt.Errorf("open store %s: %w", db.path, err)
	}
	db.db = b
	upgraded := false
	err = b.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("schema version has %d bytes", len(v))
			}
			got := binary.BigEndian.Uint64(v)
			if got > schemaVersion {
				return fmt.Errorf("store schema version %d is newer than this controller's %d", got, schemaVersion)
			}
			if got == schemaVersion {
				return nil
			}
			if err := db.upgrade(tx, got); err != nil {
				return err
			}
			upgraded = true
		}
		return meta.Put(keySchema, u64(schemaVersion))
	})
	if err == nil && upgraded {
		db.Logger.Info("store: brought up to date", "schema", schemaVersion)
	}
	if err == nil {
		err = b.View(db.nodes.load)
	}
	if err != nil {
		b.Close()
		db.db = nil
		return fmt.Errorf("open store %s: %w", db.path, err)
	}
	interval := db.StatusInterval
	if interval == 0 {
		interval = DefaultStatusInterval
	}
	if interval > 0 {
		db.flushStop, db.flushDone = make(chan struct{}), make(chan struct{})
		go db.runFlusher(interval, db.flushStop, db.flushDone)
	}
	db.Logger.Debug("store opened", "path", db.path)
	return nil
}

// Close writes the node statuses still in memory and closes the file. It
// is safe to call on a DB that is not open.
func (db *DB) Close() error {
	if db.db == nil {
		return nil
	}
	if db.flushStop != nil {
		close(db.flushStop)
		<-db.flushDone
		db.flushStop, db.flushDone = nil, nil
	}
	db.nodes.mu.Lock()
	db.nodes.closed = true // status changes from now on fail: none is lost silently
	db.nodes.mu.Unlock()
	var errs []error
	if err := db.flushStatus(); err != nil {
		errs = append(errs, err)
	}
	if err := db.db.Close(); err != nil {
		errs = append(errs, err)
	}
	db.db = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// SigningKey returns the controller's Ed25519 signing key, generating and
// storing it on first use. It lives in the store so that a backup of the
// file carries the identity nodes trust.
func (db *DB) SigningKey() (ed25519.PrivateKey, error) {
	var key ed25519.PrivateKey
	err := db.update(func(tx *bbolt.Tx) error {
		var err error
		key, err = signingKey(tx, db)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return key, nil
}

// signingKey reads, or on first use generates and stores, the signing key.
func signingKey(tx *bbolt.Tx, db *DB) (ed25519.PrivateKey, error) {
	b := tx.Bucket(bucketKeys)
	if v := b.Get(keySigning); v != nil {
		if len(v) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("stored signing key has %d bytes, want %d", len(v), ed25519.PrivateKeySize)
		}
		return bytes.Clone(v), nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	if err := b.Put(keySigning, priv); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	db.Logger.Info("generated controller signing key", "kid", protocol.KeyID(priv.Public().(ed25519.PublicKey)))
	return priv, nil
}

// SeqFloor returns the stored floor for the signer's message sequence: the
// ceiling of the numbers it reserved, every number it signed at or below
// it; 0 if none was saved.
func (db *DB) SeqFloor() (uint64, error) {
	var floor uint64
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get(keySeqFloor)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("stored sequence floor has %d bytes", len(v))
		}
		floor = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sequence floor: %w", err)
	}
	return floor, nil
}

// SaveSeqFloor stores floor unless a higher floor is stored already: the
// floor only grows, because nodes refuse sequences they have seen. The
// signer calls it before it signs with the numbers up to floor, and its
// commit is synced to the disk (bbolt's default), so it holds after a
// power cut.
func (db *DB) SaveSeqFloor(floor uint64) error {
	err := db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if v := b.Get(keySeqFloor); len(v) == 8 && binary.BigEndian.Uint64(v) >= floor {
			return nil
		}
		return b.Put(keySeqFloor, u64(floor))
	})
	if err != nil {
		return fmt.Errorf("save sequence floor: %w", err)
	}
	return nil
}

// Size returns the size of the file in bytes, for metrics.
func (db *DB) Size() (int64, error) {
	var n int64
	err := db.view(func(tx *bbolt.Tx) error {
		n = tx.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store size: %w", err)
	}
	return n, nil
}

// errClosed is returned by every call on a DB that is not open.
var errClosed = errors.New("store is not open")

func (db *DB) update(fn func(tx *bbolt.Tx) error) error {
	if db.db == nil {
		return errClosed
	}
	return db.db.Update(fn)
}

func (db *DB) view(fn func(tx *bbolt.Tx) error) error {
	if db.db == nil {
		return errClosed
	}
	return db.db.View(fn)
}

// now returns the current time rounded to milliseconds and in UTC, so that
// what is stored and what the caller sees compare equal after a JSON round
// trip.
func (db *DB) now() time.Time {
	return db.Now().UTC().Round(time.Millisecond)
}

// getJSON decodes the value at key into v and reports whether it was there.
func getJSON(b *bbolt.Bucket, key []byte, v any) (bool, error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

// putJSON encodes v and stores it at key.
func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// putChanged stores v at key unless key holds v already. A Put of the
// same bytes still copies the key's page into the transaction, and the
// commit writes it again: the index entries of a delivery, rewritten
// unchanged by each of its node's event batches, made every commit of an
// emergency round's ingest spill and write pages of the node-keyed
// indexes across the whole store (BenchmarkRecordEventsRound).
func putChanged(b *bbolt.Bucket, key, v []byte) error {
	if old := b.Get(key); old != nil && bytes.Equal(old, v) {
		return nil
	}
	return b.Put(key, v)
}

// u64 returns v big-endian, so that byte order is numeric order.
func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// join builds a composite key from parts separated by 0x00, which no id
// contains (protocol.CheckID), so prefixes of one part never match another.
func join(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// prefix returns the key prefix that selects every composite key whose
// first parts are parts.
func prefix(parts ...string) []byte {
	return append(join(parts...), 0)
}

// checkID returns an EInvalid error naming what the id is for, or nil.
func checkID(what, id string) error {
	if err := protocol.CheckID(id); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "%s: %s.", what, err)
	}
	return nil
}

// checkCtx stops work for a request whose caller gave up before it began;
// bbolt transactions themselves cannot be interrupted.
func checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

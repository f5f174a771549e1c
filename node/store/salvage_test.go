package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/protocol"
)

// salvaged runs Salvage on path and returns what it read back, by epoch.
func salvaged(t *testing.T, path string) (map[string][]protocol.Event, error) {
	t.Helper()
	got := map[string][]protocol.Event{}
	err := Salvage(path, func(epoch string, e protocol.Event) error {
		got[epoch] = append(got[epoch], e)
		return nil
	})
	return got, err
}

// ackedStore is fullStore with its first 120 events acknowledged: 121–200
// are unsent.
func ackedStore(t *testing.T, path string) string {
	t.Helper()
	_, epoch := fullStore(t, path)
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ack(epoch, 120); err != nil {
		t.Fatal(err)
	}
	return epoch
}

// garble writes value under key in bucket name, as a torn write leaves it.
func garble(t *testing.T, path string, put func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(put); err != nil {
		t.Fatal(err)
	}
}

func TestSalvageReadsBackTheUnsentEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		want    []uint64
		earlier []uint64 // of epoch "e-old", kept by the store before
	}{
		{"its desired state garbled", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF}) })
		}, seqRange(121, 200), nil},
		{"an event garbled", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(seqKey(150), []byte("{\"seq\":15")) })
		}, seqRange(121, 149), nil},
		{"an event missing", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(seqKey(170)) })
		}, seqRange(121, 169), nil},
		{"an event under another number", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketEvents).Put(seqKey(130), []byte(`{"seq":31,"type":"received"}`))
			})
		}, seqRange(121, 129), nil},
		{"with events of an earlier store", func(t *testing.T, path string) {
			s, err := OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			err = s.AddSalvaged("e-old", []protocol.Event{{Seq: 4, Type: protocol.EventCompleted}, {Seq: 5, Type: protocol.EventStarted}})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, seqRange(121, 200), []uint64{4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			epoch := ackedStore(t, path)
			tc.damage(t, path)
			got, err := salvaged(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got[epoch]), tc.want) {
				t.Errorf("read back %v of epoch %s, want %v", seqs(got[epoch]), epoch, tc.want)
			}
			if es := got[epoch]; len(es) > 0 && (es[0].Type != protocol.EventReceived || es[0].Occurrence == "") {
				t.Errorf("first event read back: %+v", es[0])
			}
			if !slices.Equal(seqs(got["e-old"]), tc.earlier) {
				t.Errorf("read back %v of the earlier epoch, want %v", seqs(got["e-old"]), tc.earlier)
			}
		})
	}
}

// TestSalvageOfAWreckedFile: what cannot be read gives an error or stops
// the run, never a panic or an event out of order. (Cut in half, this
// store still holds its event pages: its pages past the half are free.)
func TestSalvageOfAWreckedFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wreck func(raw []byte) []byte
		fails bool
	}{
		{"cut short", func(raw []byte) []byte { return raw[:len(raw)/2] }, false},
		{"cut to its meta pages", func(raw []byte) []byte { return raw[:8192] }, true},
		{"every data page overwritten", func(raw []byte) []byte {
			for i := 8192; i < len(raw); i++ {
				raw[i] = 0xAB
			}
			return raw
		}, true},
		{"not a store", func([]byte) []byte { return []byte("loaxa loaxa loaxa") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			epoch := ackedStore(t, path)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.wreck(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := salvaged(t, path)
			t.Logf("read back %d events, err %v", len(got[epoch]), err)
			if tc.fails && err == nil {
				t.Error("no error")
			}
			for ep, es := range got {
				if ep != epoch {
					t.Errorf("events of an epoch %q the store never had", ep)
				}
				if s := seqs(es); len(s) > 0 && !slices.Equal(s, seqRange(121, 120+uint64(len(s)))) {
					t.Errorf("read back %v: not the run from 121", s)
				}
			}
		})
	}
}

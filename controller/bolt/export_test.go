package bolt

import (
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// SeedNodes creates nodes in area in one transaction, for benchmarks that
// need thousands: one commit (and fsync) per node would dominate them.
func SeedNodes(db *DB, area string, ids []string) error {
	now := db.now()
	return db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketAreas).Get([]byte(area)) == nil {
			return fmt.Errorf("area %s missing", area)
		}
		for _, id := range ids {
			n := &loaxa.Node{ID: id, Area: area, CreatedAt: now, SecretHash: loaxa.HashSecret(id),
				Status: loaxa.NodeStatus{State: loaxa.NodeNever, Since: now}}
			if err := putJSON(tx.Bucket(bucketNodes), []byte(id), nodeRecord{n, n.SecretHash, n.BrokerHash}); err != nil {
				return err
			}
			if err := tx.Bucket(bucketNodeAreas).Put(join(area, id), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sessions returns how many sessions are stored, ended or not.
func Sessions(db *DB) (int, error) {
	var n int
	err := db.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketTokens).Stats().KeyN
		return nil
	})
	return n, err
}

package loaxa

import "io"

// Snapshot is a consistent, read-only view of the whole store, taken while
// the controller runs, for a backup.
type Snapshot interface {
	// Size is the number of bytes WriteTo writes.
	Size() int64
	// WriteTo writes the store file as of the snapshot.
	WriteTo(w io.Writer) (int64, error)
	// ContentIDs lists the content the snapshot refers to.
	ContentIDs() []string
}

package http

import (
	"context"
	"io"
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// handleBackup answers GET /api/v1/backup: a consistent snapshot of the
// store and every content file, streamed as a tar.gz archive (package
// controller/backup) while the controller keeps running. The archive holds
// every secret hash and the signing keys: whole-tree administrators only.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.Backup == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller was started without backups.")
	}
	s.audit(r, "backup", "", "", "")
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="loaxa-backup-`+s.now().UTC().Format("20060102T150405Z")+`.tar.gz"`)
	w.Header().Set("Cache-Control", "no-store")
	// Once bytes are out the status cannot change: a failure cuts the
	// connection, and the reader finds the archive short (no manifest).
	if err := s.Backup(ctx, w); err != nil {
		s.logger().Error("backup failed while streaming", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// backupFunc writes a backup archive; app wires it to controller/backup.
type backupFunc = func(ctx context.Context, w io.Writer) error

package http

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// ReleaseArchives keeps release archive files (controller/release).
type ReleaseArchives interface {
	Put(r io.Reader, arch, filename string) (*loaxa.ReleaseArchive, error)
	Open(sha string) (*os.File, error)
	// Sum returns the SHA-256 and size of a stored archive as it is on
	// disk; ENotFound if it is not there.
	Sum(sha string) (sum string, size int64, err error)
	// Remove deletes a stored archive.
	Remove(sha string) error
}

// RolloutRunner plans and drives rollouts (controller/release).
type RolloutRunner interface {
	Start(ctx context.Context, version string, targets loaxa.Targets, percent, canaries int, by string) (*loaxa.Rollout, error)
	Halt(ctx context.Context, id, by, reason string) (*loaxa.Rollout, error)
}

// handleUploadRelease answers POST /api/v1/releases?version=&arch=: the
// body is one release archive from scripts/build-boards.sh.
func (s *Server) handleUploadRelease(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "version", "arch"); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.ReleaseService == nil || s.ReleaseArchives == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not host agent releases.")
	}
	q := r.URL.Query()
	version, arch := q.Get("version"), q.Get("arch")
	if !protocol.ValidVersion(version) {
		return loaxa.Errorf(loaxa.EInvalid, "version=%q: give the release's version, 1-64 letters, digits and . _ + - (as build-boards.sh --version).", version)
	}
	if arch == "" {
		return loaxa.Errorf(loaxa.EInvalid, "arch is required: arm64, arm or amd64, the architecture the archive was built for.")
	}
	s.releaseUploads.Lock()
	defer s.releaseUploads.Unlock()
	a, err := s.ReleaseArchives.Put(http.MaxBytesReader(w, r.Body, 256<<20+1), arch, "loaxa-node-"+version+"-linux-"+arch+".tar.gz")
	if err != nil {
		return err
	}
	// The same build again is taken: backups leave the archives out, and
	// after a restore the store names a release whose file is gone until
	// it is uploaded again (docs/deploy.md).
	held, err := s.ReleaseService.FindReleaseByVersion(ctx, version)
	if err != nil && loaxa.ErrorCode(err) != loaxa.ENotFound {
		s.discardReleaseArchive(ctx, a.SHA256)
		return err
	}
	if held != nil && slices.ContainsFunc(held.Archives, func(x loaxa.ReleaseArchive) bool { return x.Arch == a.Arch && x.SHA256 == a.SHA256 }) {
		s.audit(r, "release.upload", version, "", releaseUploadDetail(a))
		s.writeJSON(w, r, http.StatusOK, held)
		return nil
	}
	rel, err := s.ReleaseService.PutReleaseArchive(ctx, version, *a, userFrom(ctx).Username)
	if err != nil {
		s.discardReleaseArchive(ctx, a.SHA256)
		return err
	}
	s.audit(r, "release.upload", version, "", releaseUploadDetail(a))
	s.writeJSON(w, r, http.StatusCreated, rel)
	return nil
}

// releaseUploadDetail is the audit detail of an uploaded release archive,
// as facts the console words ("Kiến trúc: arm64 · SHA-256: 3f2a9c1d0b7e…"):
// "arm64 <hash>" read as a bare hash.
func releaseUploadDetail(a *loaxa.ReleaseArchive) string {
	return fmt.Sprintf("arch=%s sha256=%s", a.Arch, a.SHA256)
}

// discardReleaseArchive removes the archive of a refused upload, unless a
// release names it (the same build uploaded again): nothing half-done
// stays on the controller's disk.
func (s *Server) discardReleaseArchive(ctx context.Context, sha string) {
	known, err := s.ReleaseService.ReleaseArchiveKnown(ctx, sha)
	if err != nil {
		s.Logger.Error("release upload refused; its archive is kept, as the store could not say whether a release names it", "sha256", sha, "err", err)
		return
	}
	if known {
		return
	}
	if err := s.ReleaseArchives.Remove(sha); err != nil {
		s.Logger.Error("release upload refused; its archive could not be removed", "sha256", sha, "err", err)
	}
}

// handleListReleases answers GET /api/v1/releases.
func (s *Server) handleListReleases(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if err := requireWholeTree(r.Context()); err != nil {
		return err
	}
	if s.ReleaseService == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not host agent releases.")
	}
	rels, err := s.ReleaseService.FindReleases(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"releases": nonNil(rels)})
	return nil
}

// handleGetReleaseArchive answers GET /api/v1/releases/archives/{sha}:
// the archive bytes, for nodes (HTTP Basic with their credentials) and
// admins. Nodes check the SHA-256 against the signed update command.
// Range is read as RFC 9110 has it and a Range past the end is the API's
// JSON error, as for content (byteRange, rangeRefusals).
func (s *Server) handleGetReleaseArchive(w http.ResponseWriter, r *http.Request) error {
	if err := requireWholeTree(r.Context()); err != nil {
		return err
	}
	if s.ReleaseService == nil || s.ReleaseArchives == nil {
		return loaxa.Errorf(loaxa.ENotFound, "This controller does not host agent releases.")
	}
	sha := r.PathValue("sha")
	known, err := s.ReleaseService.ReleaseArchiveKnown(r.Context(), sha)
	if err != nil {
		return err
	}
	if !known {
		return loaxa.Errorf(loaxa.ENotFound, "No release archive %q.", sha)
	}
	f, err := s.ReleaseArchives.Open(sha)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// Boards resume a broken download with Range (node/update): the same
	// rules as the content downloads.
	byteRange(r)
	w.Header().Set("Content-Type", "application/gzip")
	http.ServeContent(s.rangeRefusals(w, r, fi.Size(), "the release archive "+sha), r, sha+".tar.gz", fi.ModTime(), f)
	return nil
}

// rolloutRequest is the body of POST /api/v1/rollouts.
type rolloutRequest struct {
	Version  string        `json:"version"`
	Targets  loaxa.Targets `json:"targets"`
	Percent  int           `json:"percent"`
	Canaries int           `json:"canaries"`
}

// handleCreateRollout answers POST /api/v1/rollouts. A release whose
// archive is not on disk (a restore leaves them out), or whose archive's
// bytes no longer have the SHA-256 recorded at upload, is refused: its
// canaries would get 404 fetching it, or refuse it, and the rollout would
// halt.
func (s *Server) handleCreateRollout(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.Rollouts == nil || s.ReleaseService == nil || s.ReleaseArchives == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not run rollouts.")
	}
	req := rolloutRequest{Percent: 100, Canaries: 1}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Targets.Areas) == 0 && len(req.Targets.Nodes) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "targets: name at least one area or node to update.")
	}
	// Every target must exist, as an announcement's: a mistyped cluster
	// beside a real one was left out without a word, and the technician
	// believed that board was being updated.
	for _, id := range req.Targets.Areas {
		if _, err := s.requireArea(ctx, "targets.areas", id); err != nil {
			return err
		}
	}
	for _, id := range req.Targets.Nodes {
		if _, err := s.requireNode(ctx, "targets.nodes", id); err != nil {
			return err
		}
	}
	rel, err := s.ReleaseService.FindReleaseByVersion(ctx, req.Version)
	if err != nil {
		return err
	}
	for _, a := range rel.Archives {
		sum, size, err := s.ReleaseArchives.Sum(a.SHA256)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return loaxa.Errorf(loaxa.EConflict, "Release %q has no %s archive on this controller (release archives are not in backups); upload it again with POST /api/v1/releases?version=%s&arch=%s, the same archive, then start the rollout.",
				rel.Version, a.Arch, rel.Version, a.Arch)
		}
		if err != nil {
			return fmt.Errorf("rollout of %s: %w", rel.Version, err)
		}
		if sum != a.SHA256 {
			s.logger().Error("rollout refused: a release archive on disk does not match its upload", "version", rel.Version, "arch", a.Arch,
				"sha256", sum, "size", size, "uploaded_sha256", a.SHA256, "uploaded_size", a.Size)
			return loaxa.Errorf(loaxa.EConflict, "Release %q: its %s archive on this controller is damaged: it holds %d bytes with SHA-256 %s, not the %d bytes with SHA-256 %s uploaded (a copy cut short, a disk fault, or a file replaced under its name), and every node would refuse it; upload it again with POST /api/v1/releases?version=%s&arch=%s, the same archive, then start the rollout.",
				rel.Version, a.Arch, size, sum, a.Size, a.SHA256, rel.Version, a.Arch)
		}
	}
	ro, err := s.Rollouts.Start(ctx, req.Version, req.Targets, req.Percent, req.Canaries, userFrom(ctx).Username)
	if err != nil {
		return err
	}
	s.audit(r, "rollout.create", ro.ID, "", rolloutDetail(ro))
	s.writeJSON(w, r, http.StatusCreated, ro)
	return nil
}

// rolloutDetail is the audit detail of a rollout started, as facts the
// console words: what a reviewer asks of an update that went wrong, which
// version went to which clusters and how fast (percent, canaries), and
// how many clusters it asked (node_count). It was the version alone.
func rolloutDetail(ro *loaxa.Rollout) string {
	return fmt.Sprintf("version=%s areas=%s nodes=%s percent=%d canaries=%d node_count=%d", ro.Version,
		strings.Join(ro.Targets.Areas, ","), strings.Join(ro.Targets.Nodes, ","), ro.Percent, ro.Canaries, len(ro.Nodes))
}

// rolloutHaltDetail is the audit detail of a rollout halted by hand: the
// version it stopped and the admin's reason as given (the rollout's
// reason adds "halted by <user>", which the entry's actor says already).
// It was the rollout's reason as prose.
func rolloutHaltDetail(ro *loaxa.Rollout, reason string) string {
	d := fmt.Sprintf("version=%s", ro.Version)
	if reason != "" {
		d += fmt.Sprintf(" reason=%q", reason)
	}
	return d
}

// handleListRollouts answers GET /api/v1/rollouts.
func (s *Server) handleListRollouts(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if err := requireWholeTree(r.Context()); err != nil {
		return err
	}
	if s.ReleaseService == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not run rollouts.")
	}
	ros, err := s.ReleaseService.FindRollouts(r.Context(), loaxa.RolloutFilter{})
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"rollouts": nonNil(ros)})
	return nil
}

// handleGetRollout answers GET /api/v1/rollouts/{id}: the rollout with
// every node's progress.
func (s *Server) handleGetRollout(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if err := requireWholeTree(r.Context()); err != nil {
		return err
	}
	if s.ReleaseService == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not run rollouts.")
	}
	ro, err := s.ReleaseService.FindRolloutByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, ro)
	return nil
}

// haltRequest is the body of POST /api/v1/rollouts/{id}/halt.
type haltRequest struct {
	Reason string `json:"reason"`
}

// handleHaltRollout answers POST /api/v1/rollouts/{id}/halt: an admin
// stops a rollout in progress (a complaint from the field, a bad sign the
// canaries did not show).
func (s *Server) handleHaltRollout(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.Rollouts == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller does not run rollouts.")
	}
	var req haltRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	ro, err := s.Rollouts.Halt(ctx, r.PathValue("id"), userFrom(ctx).Username, req.Reason)
	if err != nil {
		return err
	}
	s.audit(r, "rollout.halt", ro.ID, "", rolloutHaltDetail(ro, req.Reason))
	s.writeJSON(w, r, http.StatusOK, ro)
	return nil
}

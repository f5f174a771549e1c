package protocol

import (
	"fmt"
	"regexp"
)

// CmdUpdate asks a node to install another agent release (Command.Update).
// The command is signed like every command, and it carries the SHA-256 and
// size of each archive, so the signature covers the bytes the node
// installs: an archive changed on the way or on the server is refused.
const CmdUpdate = "update"

// Update events a node reports about agent releases (Event.Version names
// the release).
const (
	// EventUpdated: the node runs Version, installed after its trial and
	// kept after its probation (it ran healthy for a while); Reason names
	// the version it came from.
	EventUpdated EventType = "updated"
	// EventUpdateFailed: the node did not move to Version; Reason says why
	// (download, checksum, the new agent exited or did not connect in
	// time, or it crashed on probation and the previous one was put
	// back: "rolled back from …").
	EventUpdateFailed EventType = "update-failed"
)

// Update is a release of the node agent: one archive per board
// architecture.
type Update struct {
	Version  string          `json:"version"`
	Archives []UpdateArchive `json:"archives"`
}

// UpdateArchive is one architecture's release archive, as written by
// scripts/build-boards.sh (a tar.gz with one directory holding the node
// binary), fetched from the controller over HTTP with the node's
// credentials.
type UpdateArchive struct {
	// Arch is GOARCH ("arm64", "arm", "amd64").
	Arch   string `json:"arch"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Path is the archive's path on the controller, e.g.
	// /api/v1/releases/archives/<sha256>.
	Path string `json:"path"`
}

var versionPattern = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)

// ValidVersion reports whether v can name a release (it becomes part of
// file names).
func ValidVersion(v string) bool { return versionPattern.MatchString(v) }

// Validate checks u.
func (u *Update) Validate() error {
	if !ValidVersion(u.Version) {
		return fmt.Errorf("update: version %q: want 1-64 letters, digits and . _ + -", u.Version)
	}
	if len(u.Archives) == 0 {
		return fmt.Errorf("update %s: no archives", u.Version)
	}
	for _, a := range u.Archives {
		switch {
		case a.Arch == "":
			return fmt.Errorf("update %s: archive without arch", u.Version)
		case !ValidContentID(a.SHA256):
			return fmt.Errorf("update %s/%s: sha256 %q is not a hex SHA-256", u.Version, a.Arch, a.SHA256)
		case a.Size <= 0:
			return fmt.Errorf("update %s/%s: size %d", u.Version, a.Arch, a.Size)
		case a.Path == "" || a.Path[0] != '/':
			return fmt.Errorf("update %s/%s: path %q: want an absolute path on the controller", u.Version, a.Arch, a.Path)
		}
	}
	return nil
}

// For returns the archive for arch, or nil.
func (u *Update) For(arch string) *UpdateArchive {
	for i := range u.Archives {
		if u.Archives[i].Arch == arch {
			return &u.Archives[i]
		}
	}
	return nil
}

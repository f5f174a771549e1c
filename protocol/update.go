package protocol

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
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
		case !ValidArchivePath(a.Path):
			return fmt.Errorf("update %s/%s: path %q: want an absolute path on the controller (one leading /, no host, no backslash or control characters)", u.Version, a.Arch, a.Path)
		}
	}
	return nil
}

// maxArchivePath bounds an archive's path (the controller's are about 90
// bytes).
const maxArchivePath = 1024

// archiveBase stands for a controller's address when a path is checked:
// with a port and a path of its own, as behind a reverse proxy.
var archiveBase = &url.URL{Scheme: "https", Host: "controller.invalid:8443", Path: "/loaxa/"}

// ValidArchivePath reports whether p is a path on the controller a node
// may fetch a release from. "//other-host/x" starts with "/" too, but a
// URL resolution takes it as another host, and a backslash is taken as
// "/" by WHATWG parsers and some proxies; the node must fetch its agent
// from its controller alone, whatever the signature covers.
func ValidArchivePath(p string) bool {
	if len(p) < 1 || len(p) > maxArchivePath || p[0] != '/' || strings.HasPrefix(p, "//") {
		return false
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '\\' {
			return false
		}
	}
	ref, err := url.Parse(p)
	if err != nil || ref.Scheme != "" || ref.Host != "" || ref.User != nil || ref.Opaque != "" {
		return false
	}
	if archiveBase.ResolveReference(ref).Host != archiveBase.Host {
		return false
	}
	_, err = joinArchive(archiveBase.String(), p)
	return err == nil
}

// ArchiveURL is the address of the archive at path on the controller at
// base (its HTTP address, which may end in a path of its own), refused
// unless path is a ValidArchivePath that stays on base's host.
func ArchiveURL(base, path string) (string, error) {
	if !ValidArchivePath(path) {
		return "", fmt.Errorf("archive path %q: want an absolute path on the controller (one leading /, no host, no backslash or control characters)", path)
	}
	return joinArchive(base, path)
}

// joinArchive appends path to base, as nodes always have, and checks the
// result is on base's host.
func joinArchive(base, path string) (string, error) {
	b, err := url.Parse(base)
	if err != nil || b.Host == "" {
		return "", fmt.Errorf("controller address %q: not an http(s) URL", base)
	}
	s := strings.TrimRight(base, "/") + path
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("archive path %q: %w", path, err)
	}
	if u.Scheme != b.Scheme || u.Host != b.Host || u.User.String() != b.User.String() {
		return "", fmt.Errorf("archive path %q: leads to %s, not to the controller %s", path, u.Host, b.Host)
	}
	return s, nil
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

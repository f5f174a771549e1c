package protocol_test

import (
	"net/url"
	"strings"
	"testing"

	"loaxa.vn/protocol"
)

// archiveSHA is a well-formed SHA-256 for the updates below.
var archiveSHA = strings.Repeat("ab", 32)

// updateWithPath is a release whose one archive is at path.
func updateWithPath(path string) *protocol.Update {
	return &protocol.Update{Version: "2.0.0", Archives: []protocol.UpdateArchive{{Arch: "arm64", SHA256: archiveSHA, Size: 15 << 20, Path: path}}}
}

// TestUpdateArchivePathStaysOnTheController: an archive path that starts
// with "/" but names another host once taken as a URL reference
// ("//other-host/x"), or that a proxy or browser-style parser would read
// so (a backslash), is refused by Validate; the controller's own paths
// are not.
func TestUpdateArchivePathStaysOnTheController(t *testing.T) {
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{"/api/v1/releases/archives/" + archiveSHA, true},
		{"/a/b?x=1", true},
		{"/%2F%2Fother-host/x", true}, // one path segment on the controller
		{"//other-host/x", false},
		{"///other-host/x", false},
		{"//n1:secret@other-host/x", false},
		{"/\\other-host/x", false},
		{"/\\\\other-host/x", false},
		{"/x y", false},
		{"/x\nHost: other-host", false},
		{"/x\x00", false},
		{"", false},
		{"api/v1/x", false},
		{"http://other-host/x", false},
		{"https:/x", false},
		{"/" + strings.Repeat("a", 2000), false},
	} {
		err := updateWithPath(c.path).Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate with path %.80q: %v, want valid %v", c.path, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "path") {
			t.Errorf("Validate with path %.80q: %.200v, want the path named", c.path, err)
		}
	}
}

// TestArchiveURL: the archive's address is the controller's, whatever
// path the controller's address ends in.
func TestArchiveURL(t *testing.T) {
	for _, c := range []struct{ base, path, want string }{
		{"http://10.0.0.1:8080", "/api/v1/releases/archives/x", "http://10.0.0.1:8080/api/v1/releases/archives/x"},
		{"https://loa.example.vn/loaxa/", "/api/v1/x", "https://loa.example.vn/loaxa/api/v1/x"},
		{"http://10.0.0.1:8080", "//other-host/x", ""},
		{"http://10.0.0.1:8080", "/\\other-host/x", ""},
		{"10.0.0.1:8080", "/x", ""},
	} {
		got, err := protocol.ArchiveURL(c.base, c.path)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ArchiveURL(%q, %q) = %q, %v; want %q", c.base, c.path, got, err, c.want)
		}
	}
}

// FuzzUpdateArchivePath: whatever path Validate accepts stays on the
// controller's host, joined as the node joins it and resolved as a URL
// reference, under any controller address.
func FuzzUpdateArchivePath(f *testing.F) {
	for _, s := range []string{"/api/v1/releases/archives/" + archiveSHA, "//other-host/x", "/\\other-host/x", "/..//x", "/./x", "/@other-host/x", "/x?//y#//z"} {
		f.Add(s, "http://10.0.0.1:8080")
	}
	f.Add("/x", "https://user@loa.example.vn/p/")
	f.Fuzz(func(t *testing.T, path, base string) {
		if updateWithPath(path).Validate() != nil {
			return
		}
		b, err := url.Parse(base)
		if err != nil || b.Host == "" || b.Opaque != "" {
			return
		}
		ref, err := url.Parse(path)
		if err != nil {
			t.Fatalf("valid path %q does not parse: %v", path, err)
		}
		if r := b.ResolveReference(ref); r.Host != b.Host || r.Scheme != b.Scheme {
			t.Fatalf("valid path %q resolves against %q to %s", path, base, r)
		}
		u, err := protocol.ArchiveURL(base, path)
		if err != nil {
			t.Fatalf("valid path %q refused under %q: %v", path, base, err)
		}
		if j, err := url.Parse(u); err != nil || j.Host != b.Host || j.Scheme != b.Scheme {
			t.Fatalf("valid path %q joined to %q: %q (%v)", path, base, u, err)
		}
	})
}

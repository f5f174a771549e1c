//go:build unix

package backup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A restore is run as root (the service's data directory,
// /var/lib/loaxa-controller, is its user's, mode 0750), and what it wrote
// was root's, mode 0600: the controller, started again as its user, failed
// with "open store /var/lib/loaxa-controller/loaxa.db: permission denied",
// and systemd's StateDirectory= does not mend it (it looks no further than
// the directory, which is the user's). What a restore writes now belongs to
// the owner of the data directory.
func TestRestoreAsRootGivesTheFilesToTheDataDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files to another user")
	}
	const uid, gid = 65534, 65534 // nobody, nogroup: another user than root
	raw, id := archive(t)
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{StoreFile, contentDir, filepath.Join(contentDir, id+contentExt)} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s belongs to %d:%d, want the data directory's owner %d:%d", name, st.Uid, st.Gid, uid, gid)
		}
	}
}

package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ownersRecheck is how long GET /api/v1/health's "files" check keeps a
// walk's answer while it finds foreign files: the check is public, and
// each walk reads every entry of the data directory (45–106 ms for 10,000
// audio files), so asking in a loop must not walk it in a loop. An
// admin's chown shows as fixed within this time.
const ownersRecheck = time.Minute

// foreignShown is how many foreign files a message names; it counts the
// rest.
const foreignShown = 5

// foreignFile is a file or directory in the data directory that belongs
// to another user than the controller's.
type foreignFile struct {
	Path  string // relative to the data directory
	Owner string // user name, or uid
}

// dataOwner checks that every file in the data directory belongs to the
// user the controller runs as. A restore or a copy made as root (by hand,
// or by a release before fe9eef5) leaves root's files there, mode 0600:
// the controller then cannot open its store, or starts and cannot serve
// the audio the boards download, with nothing said but "permission
// denied" for one file. Root may write everything and is not checked.
type dataOwner struct {
	dir string
	uid int
	gid int
	log *slog.Logger // a recheck that fails is logged; nil: not

	mu    sync.Mutex
	found []foreignFile // at the last check
	walks int           // checks made, for tests

	// walking is held through a recheck, so that requests arriving
	// meanwhile wait for its answer rather than walk again.
	walking sync.Mutex
	walked  time.Time // when the last recheck began; zero: none since the start's check
	err     error     // the last recheck's failure
}

// check walks the data directory and keeps what belongs to others.
func (o *dataOwner) check() ([]foreignFile, error) {
	var found []foreignFile
	names := map[int]string{} // a lookup reads /etc/passwd
	if o.uid != 0 {
		err := filepath.WalkDir(o.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				// A directory this user cannot read: its entry was
				// checked in its parent's listing.
				if d != nil && errors.Is(err, fs.ErrPermission) {
					return nil
				}
				return err
			}
			info, err := d.Info()
			if err != nil {
				return nil // gone meanwhile
			}
			uid, ok := fileOwner(info)
			if ok && uid != o.uid {
				rel, _ := filepath.Rel(o.dir, path)
				name, ok := names[uid]
				if !ok {
					name = userName(uid)
					names[uid] = name
				}
				found = append(found, foreignFile{Path: rel, Owner: name})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("check the owners of the files in %s: %w", o.dir, err)
		}
	}
	o.mu.Lock()
	o.found = found
	o.walks++
	o.mu.Unlock()
	return found, nil
}

// current is the "files" check's answer at now. A clean directory is not
// walked again (what the start's check found); while foreign files were
// found, the directory is walked again at the first request, then at most
// once every ownersRecheck, and requests meanwhile, or waiting for that
// walk, share its answer. (The start's check comes before the store and
// the audio are opened, so the first request counts them.)
func (o *dataOwner) current(now time.Time) ([]foreignFile, error) {
	if o == nil { // not opened
		return nil, nil
	}
	o.walking.Lock()
	defer o.walking.Unlock()
	found := o.last()
	if (len(found) == 0 && o.err == nil) || now.Sub(o.walked) < ownersRecheck {
		return found, o.err
	}
	o.walked = now
	found, o.err = o.check()
	if o.err != nil && o.log != nil {
		o.log.Warn("data directory: the owners of its files were not checked", "err", o.err)
	}
	return found, o.err
}

// errOwnersUnchecked is what GET /api/v1/health, which anyone may read,
// says of a walk that failed: the error names the data directory's path,
// the log has it.
var errOwnersUnchecked = errors.New("the owners of the data directory's files could not be checked: the controller's log says why")

// last returns what the last check found.
func (o *dataOwner) last() []foreignFile {
	if o == nil { // not opened
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.found
}

// chown is the command that gives the data directory back to the
// controller's user.
func (o *dataOwner) chown() string {
	return fmt.Sprintf("chown -R %s %s", o.chownTo(), o.dir)
}

// chownTo is chown's owner argument for the controller's user: its name
// and login group, or the numbers.
func (o *dataOwner) chownTo() string {
	if u, err := user.LookupId(strconv.Itoa(o.uid)); err == nil {
		return u.Username + ":"
	}
	return fmt.Sprintf("%d:%d", o.uid, o.gid)
}

// problem says what the foreign files are and what to do, for the log,
// GET /api/v1/health and a start that fails on one of them.
func (o *dataOwner) problem(found []foreignFile) string {
	names := make([]string, 0, foreignShown)
	for i, f := range found {
		if i == foreignShown {
			names = append(names, fmt.Sprintf("and %d more", len(found)-foreignShown))
			break
		}
		names = append(names, fmt.Sprintf("%s (%s)", f.Path, f.Owner))
	}
	what := fmt.Sprintf("%d files in the data directory %s belong", len(found), o.dir)
	if len(found) == 1 {
		what = fmt.Sprintf("1 file in the data directory %s belongs", o.dir)
	}
	return fmt.Sprintf("%s to another user than this controller's (%s), so it may not be able to read or write them (a restore or copy made as root leaves such files): %s; give them back to it: %s",
		what, userName(o.uid), strings.Join(names, ", "), o.chown())
}

// summary says it for GET /api/v1/health, which anyone may read: how many
// files and whose, not their names or the directory's path (the start's
// log has them).
func (o *dataOwner) summary(found []foreignFile) string {
	var owners []string
	for _, f := range found {
		if !slices.Contains(owners, f.Owner) {
			owners = append(owners, f.Owner)
		}
	}
	what := fmt.Sprintf("%d files in the data directory belong", len(found))
	if len(found) == 1 {
		what = "1 file in the data directory belongs"
	}
	return fmt.Sprintf("%s to %s, not to this controller's user (%s), which may not be able to read or write them: the controller's log at start names them and the command that gives them back (chown -R %s on the data directory)",
		what, strings.Join(owners, ", "), userName(o.uid), o.chownTo())
}

// detail is what GET /api/v1/health says when nothing was found.
func (o *dataOwner) detail() string {
	switch {
	case o.uid == 0:
		return "the controller runs as root: owners not checked"
	case !ownersKnown:
		return "owners not checked on this system"
	}
	return "every file in the data directory belongs to " + userName(o.uid)
}

// userName is the name of uid, or the number.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

// checkDataOwner checks the data directory at start and logs what belongs
// to another user; GET /api/v1/health's "files" check says it too.
func (a *App) checkDataOwner() {
	uid := os.Geteuid
	if a.EUID != nil {
		uid = a.EUID
	}
	a.owner = &dataOwner{dir: a.Config.DataDir, uid: uid(), gid: os.Getegid(), log: a.Logger}
	found, err := a.owner.check()
	if err != nil {
		// GET /health walks again rather than say every file is the
		// controller's.
		a.owner.err = err
		a.Logger.Warn("data directory: the owners of its files were not checked", "err", err)
		return
	}
	if len(found) == 0 {
		return
	}
	names := make([]string, 0, foreignShown)
	for _, f := range found[:min(len(found), foreignShown)] {
		names = append(names, f.Path+" ("+f.Owner+")")
	}
	a.Logger.Error("data directory: files belong to another user than this controller's, which may not read or write them; give them back to it",
		"dir", a.Config.DataDir, "user", userName(a.owner.uid), "count", len(found), "files", strings.Join(names, ", "), "fix", a.owner.chown())
}

// explainOpen adds to a start that failed with "permission denied" which
// files of the data directory belong to another user and what to do, not
// only the first file it could not open.
func (a *App) explainOpen(err error) error {
	if found := a.owner.last(); err != nil && errors.Is(err, fs.ErrPermission) && len(found) > 0 {
		return fmt.Errorf("%w; %s", err, a.owner.problem(found))
	}
	return err
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/backup"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// A controller with areas, nodes, content, an announcement played by a
// real node, and its event log is backed up online — while an officer keeps
// adding areas — restored into an empty data directory, and started again:
// everything matches, the audio is byte for byte the same, and the node's
// old credentials still join the restored controller.
func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	creds := c.CreateNode("tt-01", "12346")
	c.CreateNode("tt-02", "12346")
	n := rig.StartNode(t, creds, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "tt-01 online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })
	ct := c.Upload("tiem-chung.wav", rig.ToneWAV(440, 800*time.Millisecond, 16000, 1))
	ann := c.Announce(ct.ID, []string{"12346"}, nil, time.Now().Add(1500*time.Millisecond))
	rig.Eventually(t, 20*time.Second, "tt-01 completed", func() bool {
		for _, d := range c.Deliveries(ann.ID) {
			if d.Node == "tt-01" && d.State == loaxa.DeliveryCompleted {
				return true
			}
		}
		return false
	})

	// Online: writes go on during the backup.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("9%04d", i)
			if status, raw := c.Do("POST", "/api/v1/areas", map[string]string{"id": id, "name": "Thôn " + id, "parent": "12346"}, nil); status != 201 {
				t.Errorf("create area %s during the backup: %d %s", id, status, raw)
				return
			}
		}
	}()
	file := filepath.Join(t.TempDir(), "loaxa.tar.gz")
	m, err := (&app.BackupClient{URL: c.URL, Username: "admin", Password: "e2e-admin-password"}).Fetch(context.Background(), file)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.Content, ct.ID) {
		t.Fatalf("backup manifest lists content %v, want %s among it", m.Content, ct.ID)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v (%v); it holds secrets, want 0600", fi.Mode(), err)
	}

	before := snapshotAPI(t, c)
	n.Stop(t)

	data := t.TempDir()
	cfg := app.DefaultConfig()
	cfg.DataDir = data
	if _, err := app.Restore(context.Background(), cfg, file, false); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Restore(context.Background(), cfg, file, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore over a store without --force: %v; want a refusal naming --force", err)
	}

	r := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) { cfg.DataDir = data }})
	after := snapshotAPI(t, r)

	// The restored areas are the original ones up to some point of the
	// concurrent writes: every restored area exists in the original, and
	// the areas from before the backup are all there.
	for id, name := range after.areas {
		if before.areas[id] != name {
			t.Errorf("restored area %s %q, original %q", id, name, before.areas[id])
		}
	}
	for _, id := range []string{"31", "12346"} {
		if after.areas[id] == "" {
			t.Errorf("area %s lost", id)
		}
	}
	for what, pair := range map[string][2]string{
		"nodes":         {before.nodes, after.nodes},
		"content":       {before.content, after.content},
		"announcements": {before.announcements, after.announcements},
		"deliveries":    {before.deliveries, after.deliveries},
		"events":        {before.events, after.events},
		"users":         {before.users, after.users},
		"keys":          {before.keys, after.keys},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s differ after restore:\nbefore %s\nafter  %s", what, pair[0], pair[1])
		}
	}
	if !strings.Contains(after.events, "completed") {
		t.Errorf("restored event log lacks the completed play: %s", after.events)
	}
	for id, audio := range before.audio {
		if after.audio[id] != audio {
			t.Errorf("audio %s differs after restore (%d bytes, was %d)", id, len(after.audio[id]), len(audio))
		}
	}

	// The node's credentials (secret hash, signing keys) survived: it joins
	// the restored controller at its new address.
	moved := *creds
	moved.Controller = r.URL
	moved.Broker = r.App.Broker.URL()
	rig.StartNode(t, &moved, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "tt-01 online at the restored controller", func() bool {
		return r.Node("tt-01").Status.State == loaxa.NodeOnline
	})
}

// A truncated or tampered backup is refused before anything is put in place.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.Upload("a.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
	file := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := (&app.BackupClient{URL: c.URL, Token: c.Token}).Fetch(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.tar.gz")
	os.WriteFile(short, raw[:len(raw)*2/3], 0o600)
	cfg := app.DefaultConfig()
	cfg.DataDir = t.TempDir()
	if _, err := app.Restore(context.Background(), cfg, short, false); err == nil {
		t.Fatal("restored a truncated backup")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, backup.StoreFile)); !os.IsNotExist(err) {
		t.Errorf("a refused restore left a store behind: %v", err)
	}

	// A running controller's store is not replaced under it.
	if _, err := app.Restore(context.Background(), c.App.Config, file, true); err == nil || !strings.Contains(err.Error(), "stop the controller") {
		t.Errorf("restore into a running controller's data: %v", err)
	}
	// Not an admin of the whole tree: no backup.
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-xa", "password": "mat-khau-xa-1234", "role": "commune", "area": "12346"}, nil)
	_, err = (&app.BackupClient{URL: c.URL, Username: "can-bo-xa", Password: "mat-khau-xa-1234"}).Fetch(context.Background(), filepath.Join(t.TempDir(), "x.tar.gz"))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("backup by a commune officer: %v; want 403", err)
	}
}

// apiState is what a controller answers about itself, as comparable JSON.
type apiState struct {
	areas                                                          map[string]string
	nodes, content, announcements, deliveries, events, users, keys string
	audio                                                          map[string]string
}

func snapshotAPI(t *testing.T, c *rig.Controller) apiState {
	t.Helper()
	var s apiState
	var areas struct{ Areas []*loaxa.Area }
	c.MustDo("GET", "/api/v1/areas", nil, &areas)
	s.areas = map[string]string{}
	for _, a := range areas.Areas {
		s.areas[a.ID] = a.Name
	}
	var nodes struct{ Nodes []*loaxa.Node }
	c.MustDo("GET", "/api/v1/nodes", nil, &nodes)
	for _, n := range nodes.Nodes {
		n.Status = loaxa.NodeStatus{} // live, reset at start
	}
	s.nodes = rig.Describe(nodes)
	var content struct{ Content []*loaxa.Content }
	c.MustDo("GET", "/api/v1/content", nil, &content)
	s.content = rig.Describe(content)
	s.audio = map[string]string{}
	for _, ct := range content.Content {
		_, raw := c.Do("GET", "/api/v1/content/"+ct.ID+"/audio", nil, nil)
		s.audio[ct.ID] = string(raw)
	}
	var anns struct{ Announcements []*loaxa.Announcement }
	c.MustDo("GET", "/api/v1/announcements", nil, &anns)
	s.announcements = rig.Describe(anns)
	var dels []string
	for _, a := range anns.Announcements {
		dels = append(dels, rig.Describe(c.Deliveries(a.ID)))
	}
	s.deliveries = strings.Join(dels, "\n")
	s.events = rig.Describe(c.Events(url.Values{"node": {"tt-01"}}))
	var users struct{ Users []*loaxa.User }
	c.MustDo("GET", "/api/v1/users", nil, &users)
	s.users = rig.Describe(users)
	var keys any
	c.MustDo("GET", "/api/v1/keys", nil, &keys)
	s.keys = rig.Describe(keys)
	return s
}

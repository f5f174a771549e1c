package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// ExportMosquitto writes the broker files from a stopped controller's
// store, and refuses a store a running controller holds.
func TestExportMosquitto(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	out := filepath.Join(t.TempDir(), "mosquitto")
	if _, err := ExportMosquitto(cfg, out); err == nil || !strings.Contains(err.Error(), "--broker") {
		t.Errorf("without --broker: %v", err)
	}
	cfg.BrokerURL = "tcp://loaxa-controller:mat-khau@broker:1883"
	if _, err := ExportMosquitto(cfg, out); err == nil || !strings.Contains(err.Error(), "no store") {
		t.Errorf("without a store: %v", err)
	}

	db := bolt.NewDB(filepath.Join(cfg.DataDir, "loaxa.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	_, sec := loaxa.NewNodeSecret()
	nodes := []*loaxa.Node{
		{ID: "n1", Area: "31", SecretHash: sec.Hash, BrokerHash: sec.BrokerHash},
		{ID: "cho-ma", Area: "31"},                                  // waiting for its enrolment code
		{ID: "cu", Area: "31", SecretHash: loaxa.HashSecret("old")}, // from before broker hashes
	}
	if err := bolt.NewNodeService(db).CreateNodes(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportMosquitto(cfg, out); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("with the store open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	missing, err := ExportMosquitto(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0] != "cu" {
		t.Errorf("missing %v, want [cu]", missing)
	}
	read := func(name string) string {
		raw, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	passwd, acl := read(MosquittoPasswdFile), read(MosquittoACLFile)
	if !strings.Contains(passwd, "n1:"+sec.BrokerHash+"\n") || !strings.HasPrefix(passwd, "loaxa-controller:$7$101$") ||
		!strings.Contains(passwd, "\nloaxa-controller-pub:"+strings.SplitN(strings.SplitN(passwd, "\n", 2)[0], ":", 2)[1]+"\n") ||
		strings.Contains(passwd, "cho-ma") || strings.Contains(passwd, "mat-khau") {
		t.Errorf("password file:\n%s", passwd)
	}
	for _, want := range []string{"user n1\ntopic readwrite loa/v1/node/n1/state\ntopic write loa/v1/node/n1/event\n", "topic read loa/v1/area/31/cmd\n", "user loaxa-controller\ntopic readwrite loa/v1/#\n", "user loaxa-controller-pub\ntopic write loa/v1/#\n"} {
		if !strings.Contains(acl, want) {
			t.Errorf("ACL lacks %q:\n%s", want, acl)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, MosquittoPasswdFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode: %v %v", fi, err)
	}
	if !strings.Contains(read(MosquittoConfFile), "allow_anonymous false") {
		t.Error("conf does not turn anonymous access off")
	}
}

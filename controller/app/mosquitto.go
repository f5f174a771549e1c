package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

// Mosquitto file names, as MosquittoConf expects them in /etc/mosquitto.
const (
	MosquittoPasswdFile = "loaxa.passwd"
	MosquittoACLFile    = "loaxa.acl"
	MosquittoConfFile   = "loaxa.conf"
)

// brokerAccount returns the controller's username and password on the
// external broker, from --broker.
func brokerAccount(brokerURL string) (user, password string, err error) {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("--broker %q: want tcp://user:password@host:1883", brokerURL)
	}
	if u.User == nil || u.User.Username() == "" {
		return "", "", fmt.Errorf("--broker %s has no user: the controller needs its own account on the broker, tcp://loaxa-controller:PASSWORD@host:1883", u.Redacted())
	}
	password, _ = u.User.Password()
	if password == "" {
		return "", "", fmt.Errorf("--broker %s has no password for user %s", u.Redacted(), u.User.Username())
	}
	return u.User.Username(), password, nil
}

// mosquittoFiles builds the files from the running services.
func mosquittoFiles(ctx context.Context, cfg Config, nodes loaxa.NodeService, areas loaxa.AreaService) (*mqtt.MosquittoFiles, error) {
	user, password, err := brokerAccount(cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	return mqtt.ExportMosquitto(ctx, nodes, areas, protocol.NewTopics(cfg.TopicPrefix), user, loaxa.HashBrokerSecret(password))
}

// ExportMosquitto writes an external Mosquitto's password file, ACL file
// and configuration snippet for the store in cfg.DataDir into dir. It
// opens the store itself, so the controller must not be running on that
// directory; a running controller serves the same files at
// GET /api/v1/broker/mosquitto.
func ExportMosquitto(cfg Config, dir string) ([]string, error) {
	if cfg.BrokerURL == "" {
		return nil, errors.New("give --broker tcp://user:password@host:1883 (or LOAXA_BROKER): the external broker's account for the controller, written into the files")
	}
	if dir == "" {
		return nil, errors.New("give --out DIR: where to write " + MosquittoPasswdFile + ", " + MosquittoACLFile + " and " + MosquittoConfFile)
	}
	path := filepath.Join(cfg.DataDir, "loaxa.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no store at %s (--data): %w", path, err)
	}
	db := bolt.NewDB(path)
	if err := db.Open(); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("the store %s is in use: a controller is running on it; fetch the files from it with GET /api/v1/broker/mosquitto instead", path)
		}
		return nil, err
	}
	defer db.Close()
	files, err := mosquittoFiles(context.Background(), cfg, bolt.NewNodeService(db), bolt.NewAreaService(db))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	for _, f := range []struct {
		name, content string
		mode          os.FileMode
	}{{MosquittoPasswdFile, files.Passwd, 0o600}, {MosquittoACLFile, files.ACL, 0o644}, {MosquittoConfFile, files.Conf, 0o644}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.content), f.mode); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return files.Missing, nil
}

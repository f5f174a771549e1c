package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/backup"
	"loaxa.vn/controller/bolt"
	"loaxa.vn/protocol"
)

// writeBackup streams a backup of the running controller (GET /api/v1/backup).
func (a *App) writeBackup(ctx context.Context, w io.Writer) error {
	_, err := backup.Write(ctx, w, backup.Source{Snapshot: a.DB.Snapshot, DataDir: a.Config.DataDir, Version: a.Version, Now: a.Clock.Now})
	return err
}

// BackupClient fetches a backup from a running controller.
type BackupClient struct {
	// URL is the controller's base URL, e.g. http://localhost:8080.
	URL string
	// Token is a bearer token of a whole-tree admin; or give Username and
	// Password to sign in.
	Token              string
	Username, Password string
	// TLS verifies an HTTPS controller (nil: the system's roots).
	TLS *tls.Config
}

// Fetch writes a backup of the controller at c.URL into file: into a
// temporary file beside it first, checked end to end, then renamed, so
// file is a whole, verified backup or is left as it was.
func (c *BackupClient) Fetch(ctx context.Context, file string) (*backup.Manifest, error) {
	m, err := c.fetch(ctx, file)
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return nil, fmt.Errorf("%w; give the certificate the controller's nodes pin with --ca PEM (its --tls-ca, or the last certificate of its --tls-cert)", err)
	}
	if errors.Is(err, protocol.ErrRedirectAway) {
		return nil, fmt.Errorf("%w; give --url the address the controller itself answers at (the backup sends its token or password to no other server)", err)
	}
	return m, err
}

// fetch is Fetch without the advice on an untrusted certificate.
func (c *BackupClient) fetch(ctx context.Context, file string) (*backup.Manifest, error) {
	base := strings.TrimRight(c.URL, "/")
	// Go's client keeps the Authorization header on a redirect to another
	// port of the same host, to a subdomain and from https to http, and
	// a 307 or 308 of the sign-in sends the password again: redirects
	// stay on the controller (protocol.ErrRedirectAway).
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: c.TLS, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: protocol.StayOnController(base),
	}
	defer client.CloseIdleConnections()
	token := c.Token
	if token == "" {
		if c.Username == "" || c.Password == "" {
			return nil, errors.New("backup: give a token (--token or LOAXA_TOKEN) or a user and password (--user and LOAXA_PASSWORD) of a whole-tree admin")
		}
		body, _ := json.Marshal(map[string]string{"username": c.Username, "password": c.Password})
		var out struct{ Token string }
		if err := call(ctx, client, "POST", base+"/api/v1/auth/token", "", bytes.NewReader(body), func(r io.Reader) error {
			return json.NewDecoder(r).Decode(&out)
		}); err != nil {
			return nil, fmt.Errorf("backup: sign in: %w", err)
		}
		token = out.Token
	}
	return writeAtomic(ctx, file, func(f *os.File) error {
		return call(ctx, client, "GET", base+"/api/v1/backup", token, nil, func(r io.Reader) error {
			_, err := io.Copy(f, r)
			return err
		})
	})
}

// call makes one API request and hands a 2xx body to read; other answers
// become errors carrying the API's message.
func call(ctx context.Context, client *http.Client, method, url, token string, body io.Reader, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %s (%s)", method, url, e.Error.Message, resp.Status)
		}
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return read(resp.Body)
}

// BackupOffline writes a backup of the store in cfg.DataDir into file. The
// controller must be stopped; a running one serves GET /api/v1/backup.
func BackupOffline(ctx context.Context, cfg Config, file string) (*backup.Manifest, error) {
	path := filepath.Join(cfg.DataDir, backup.StoreFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("backup: no store in %s: %w", cfg.DataDir, err)
	}
	db := bolt.NewDB(path)
	if err := db.Open(); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("backup: the store %s is in use: a controller is running on it; back it up online with --url", path)
		}
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	return writeAtomic(ctx, file, func(f *os.File) error {
		_, err := backup.Write(ctx, f, backup.Source{Snapshot: db.Snapshot, DataDir: cfg.DataDir, Version: "offline", Now: time.Now})
		return err
	})
}

// writeAtomic writes file through fill into a temporary file beside it,
// syncs it, checks it is a whole backup, and renames it into place.
func writeAtomic(ctx context.Context, file string, fill func(*os.File) error) (*backup.Manifest, error) {
	dir := filepath.Dir(file)
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".*")
	if err != nil {
		// Its error names the temporary file, which the operator never gave.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("backup: cannot write %s: the directory %s does not exist; create it first", file, dir)
		}
		return nil, fmt.Errorf("backup: cannot write %s in %s: %w", file, dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	var m *backup.Manifest
	if err == nil {
		m, err = backup.Check(ctx, f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// Restore puts the backup in file into cfg.DataDir. The controller must be
// stopped. With force, a store already there is replaced and kept beside
// it.
func Restore(ctx context.Context, cfg Config, file string, force bool) (*backup.Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	return backup.Restore(ctx, f, cfg.DataDir, backup.RestoreOptions{Force: force, Verify: bolt.VerifyFile})
}

// TrustPEM returns a TLS configuration that trusts the PEM certificate(s)
// in file, as nodes pin the controller's.
func TrustPEM(file string) (*tls.Config, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	cfg, err := (&protocol.Credentials{ControllerCA: string(raw)}).TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("--ca %s: %w", file, err)
	}
	return cfg, nil
}

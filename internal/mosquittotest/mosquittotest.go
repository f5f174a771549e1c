// Package mosquittotest runs a real Mosquitto broker for one test, so the
// controller and node can be tested against an external MQTT broker as well
// as the embedded one.
//
// Each broker listens on a free 127.0.0.1 port with a configuration
// generated in t.TempDir(), persistence off, and stops when the test ends.
// Stop and Restart (on the same port) let tests cut the broker away from
// connected clients; since nothing persists, retained messages and sessions
// are gone after a restart, as after a broker crash without a database.
//
// A Mosquitto started by the Debian package as a system service listens on
// :1883; these brokers never use that port and leave the service alone.
package mosquittotest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Where Debian's mosquitto package installs the broker and its password
// tool.
const (
	Binary       = "/usr/sbin/mosquitto"
	PasswdBinary = "/usr/bin/mosquitto_passwd"
)

// binary is the broker Start runs: Binary, or in this package's tests a
// stand-in that acts out mosquitto's start.
var binary = Binary

// startTimeout bounds how long a broker may take to accept connections.
const startTimeout = 10 * time.Second

// Installed returns conf, a mosquitto.conf as a deployment installs it,
// without the lines Start writes itself (allow_anonymous, password_file,
// acl_file), for Options.Config. It fails tb if conf does not turn
// anonymous access off: the file a province installs must.
func Installed(tb testing.TB, conf string) string {
	tb.Helper()
	if !strings.Contains(conf, "\nallow_anonymous false\n") {
		tb.Fatalf("the configuration lets anonymous clients in:\n%s", conf)
	}
	var out strings.Builder
	for line := range strings.Lines(conf) {
		switch strings.Fields(line + " #")[0] {
		case "allow_anonymous", "password_file", "acl_file":
			continue
		}
		out.WriteString(line)
	}
	return out.String()
}

// Options configure a broker. The zero value refuses every client (Mosquitto
// 2 denies anonymous clients by default); set AllowAnonymous or Users.
type Options struct {
	// AllowAnonymous lets clients connect without a username.
	AllowAnonymous bool
	// Users are username → plain-text password; they are hashed into the
	// password_file with mosquitto_passwd.
	Users map[string]string
	// PasswordFile is password_file content used as is (already hashed);
	// entries from Users are added to it.
	PasswordFile string
	// ACL is the acl_file content, e.g. "user n1\ntopic write loa/v1/node/n1/#\n".
	// Empty means no ACL file: every authenticated client may use any topic.
	ACL string
	// Config is extra mosquitto.conf lines, appended last.
	Config string
	// OpenFiles, if set, is the soft limit of open files of the broker's
	// process, set at every start: one file per client connection.
	// Mosquitto does not raise its own (2.0.11), and inherits the
	// starting process's soft limit (1024 under systemd by default), so a
	// broker for thousands of clients needs it. It cannot go above the
	// hard limit this process has unless it runs privileged.
	OpenFiles uint64
	// User is the account mosquitto switches to when this process runs
	// as root, as Debian's service runs as "mosquitto"; "" is root, which
	// reads the test's private files. With another user, the broker's
	// configuration, password and ACL files and the directory they are in
	// are made readable to every user; files of the test's own that the
	// configuration names must be readable to User (or made unreadable
	// on purpose). Ignored when this process is not root: mosquitto then
	// runs as this process's user.
	User string
}

// Broker is a running mosquitto process. Create it with Start.
type Broker struct {
	t    testing.TB
	dir  string
	body string // mosquitto.conf without the listener
	port int
	// openFiles is Options.OpenFiles.
	openFiles uint64
	// shared is set when mosquitto runs as another user than this
	// process (Options.User): its files are then readable to all.
	shared bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	waitErr error
	log     bytes.Buffer // every run's output
}

// Start runs mosquitto for the test and stops it on cleanup. It skips the
// test when mosquitto is not installed.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	if _, err := os.Stat(binary); err != nil {
		t.Skip("mosquitto not installed: run scripts/test.sh, which installs it")
	}
	b := &Broker{t: t, dir: t.TempDir(), openFiles: opts.OpenFiles}
	if os.Geteuid() == 0 && opts.User != "" && opts.User != "root" {
		// mosquitto reads its files again as User on a reload: the
		// test's temporary directories are 0700.
		b.shared = true
		for _, d := range []string{filepath.Dir(b.dir), b.dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatalf("mosquittotest: %v", err)
			}
		}
	}
	if err := b.writeFiles(opts); err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Errorf("mosquittotest: %v", err)
		}
	})
	// A port found free can be taken before mosquitto binds it; try a few.
	var err error
	for range 3 {
		if b.port, err = freePort(); err != nil {
			t.Fatalf("mosquittotest: %v", err)
		}
		if err = b.start(); err == nil {
			return b
		}
	}
	t.Fatalf("mosquittotest: %v\n%s", err, b.Log())
	return nil
}

func (b *Broker) writeFiles(opts Options) error {
	var conf strings.Builder
	conf.WriteString("# Written by loaxa.vn/internal/mosquittotest for one test.\n")
	conf.WriteString("persistence false\n")
	conf.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	if b.shared {
		fmt.Fprintf(&conf, "user %s\n", opts.User)
	} else if os.Geteuid() == 0 {
		// Started as root, mosquitto would switch to user "mosquitto", which
		// cannot read files in the test's private temp dir.
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, "allow_anonymous %t\n", opts.AllowAnonymous)
	if opts.PasswordFile != "" || len(opts.Users) > 0 {
		path := filepath.Join(b.dir, "passwd")
		if err := writePasswords(path, opts.PasswordFile, opts.Users); err != nil {
			return err
		}
		if err := os.Chmod(path, b.fileMode()); err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		fmt.Fprintf(&conf, "password_file %s\n", path)
	}
	if opts.ACL != "" {
		path := filepath.Join(b.dir, "acl")
		if err := os.WriteFile(path, []byte(opts.ACL), b.fileMode()); err != nil {
			return fmt.Errorf("write acl file: %w", err)
		}
		fmt.Fprintf(&conf, "acl_file %s\n", path)
	}
	conf.WriteString(opts.Config)
	b.body = conf.String()
	return nil
}

// fileMode is the mode of the files the broker reads: its user's only,
// unless it runs as another user than this process.
func (b *Broker) fileMode() os.FileMode {
	if b.shared {
		return 0o644
	}
	return 0o600
}

// writePasswords writes raw and then users, hashing the plain-text entries
// with mosquitto_passwd -U (which would mangle already hashed lines, so those
// are added afterwards).
func writePasswords(path, raw string, users map[string]string) error {
	var plain strings.Builder
	for u, p := range users {
		if strings.ContainsAny(u, ":\n") || strings.Contains(p, "\n") {
			return fmt.Errorf("user %q: names cannot hold ':' or newlines, passwords no newlines", u)
		}
		fmt.Fprintf(&plain, "%s:%s\n", u, p)
	}
	if err := os.WriteFile(path, []byte(plain.String()), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if len(users) > 0 {
		if out, err := exec.Command(PasswdBinary, "-U", path).CombinedOutput(); err != nil {
			return fmt.Errorf("hash passwords with mosquitto_passwd: %w: %s", err, out)
		}
	}
	if raw == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if !strings.HasSuffix(raw, "\n") {
		raw += "\n"
	}
	_, werr := f.WriteString(raw)
	return errors.Join(werr, f.Close())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs mosquitto on b.port and waits until it accepts connections
// and has said it runs: it accepts before it handles signals, and until
// then a SIGHUP (SetAuth) would end it.
func (b *Broker) start() error {
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		return errors.New("broker already running")
	}
	logFrom := b.log.Len()
	conf := filepath.Join(b.dir, "mosquitto.conf")
	listener := fmt.Sprintf("listener %d 127.0.0.1\n", b.port)
	if err := os.WriteFile(conf, []byte(listener+b.body), b.fileMode()); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("write mosquitto.conf: %w", err)
	}
	cmd := exec.Command(binary, "-c", conf)
	cmd.Stdout = &lockedWriter{mu: &b.mu, w: &b.log}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("start %s: %w", binary, err)
	}
	exited := make(chan struct{})
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	go func() {
		err := cmd.Wait()
		b.mu.Lock()
		b.waitErr = err
		b.mu.Unlock()
		close(exited)
	}()
	// Before the first client can connect: mosquitto only accepts once
	// the port answers below.
	if b.openFiles > 0 {
		if err := setOpenFiles(cmd.Process.Pid, b.openFiles); err != nil {
			b.stop()
			return err
		}
	}

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			if b.saidRunning(logFrom) {
				return nil
			}
		}
		select {
		case <-exited:
			b.mu.Lock()
			werr := b.waitErr
			b.cmd = nil
			b.mu.Unlock()
			return fmt.Errorf("mosquitto on %s exited at start: %v", b.Addr(), werr)
		case <-time.After(20 * time.Millisecond): // polling interval
		}
		if time.Now().After(deadline) {
			b.stop()
			return fmt.Errorf("mosquitto on %s not accepting connections and running after %v", b.Addr(), startTimeout)
		}
	}
}

// stop terminates mosquitto if it runs and waits for it to exit.
func (b *Broker) stop() error {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop mosquitto: %w", err)
	}
	// mosquitto accepts connections before it installs its signal
	// handlers, and installs them before it sets the flag its main loop
	// runs on (main in src/mosquitto.c: listeners__start, signal__setup,
	// then run = 1). A SIGTERM between the last two is lost and the
	// broker runs on: a broker stopped just after start can be there. So
	// the signal goes again until it exits; a second one while it shuts
	// down only sets the flag again.
	again := time.NewTicker(termResend)
	defer again.Stop()
	give := time.NewTimer(5 * time.Second)
	defer give.Stop()
	for {
		select {
		case <-exited:
			return nil
		case <-again.C:
			cmd.Process.Signal(syscall.SIGTERM)
		case <-give.C:
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("mosquitto on %s ignored SIGTERM for 5s and was killed", b.Addr())
		}
	}
}

// termResend is how often stop sends SIGTERM again.
const termResend = 200 * time.Millisecond

// saidRunning reports whether mosquitto logged, after offset from of the
// log, that it runs ("mosquitto version 2.0.11 running"), which it does
// once its signal handlers are in place.
func (b *Broker) saidRunning(from int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	log := b.log.String()
	if from > len(log) {
		return false
	}
	for line := range strings.Lines(log[from:]) {
		if strings.Contains(line, "mosquitto version ") && strings.HasSuffix(strings.TrimSpace(line), " running") {
			return true
		}
	}
	return false
}

// Pid returns the running broker's process id (0 if stopped), e.g. to
// read its CPU time from /proc/<pid>/stat.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// URL returns the broker URL for MQTT clients: tcp://127.0.0.1:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Addr returns host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Stop stops the broker, cutting every client off; Restart brings it back.
func (b *Broker) Stop() {
	b.t.Helper()
	if err := b.stop(); err != nil {
		b.t.Fatalf("mosquittotest: %v", err)
	}
}

// Restart stops the broker if it runs and starts it again on the same port,
// with the same configuration and no retained state.
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.stop(); err != nil {
		b.t.Fatalf("mosquittotest: %v", err)
	}
	if err := b.start(); err != nil {
		b.t.Fatalf("mosquittotest: restart: %v\n%s", err, b.Log())
	}
}

// SetAuth replaces the password file (already hashed, as
// mosquitto_passwd writes it) and the ACL file, and makes the running
// broker reload them (SIGHUP), as an operator does after regenerating
// them. The broker must have been started with a password file and an ACL.
// Reloading is asynchronous: poll with a client until new accounts work.
func (b *Broker) SetAuth(passwordFile, acl string) {
	b.t.Helper()
	if !strings.Contains(b.body, "password_file ") || !strings.Contains(b.body, "acl_file ") {
		b.t.Fatal("mosquittotest: SetAuth needs a broker started with a password file and an ACL")
	}
	for name, content := range map[string]string{"passwd": passwordFile, "acl": acl} {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(content), b.fileMode()); err != nil {
			b.t.Fatalf("mosquittotest: %v", err)
		}
	}
	b.Reload()
}

// Reload makes the running broker read its configuration's files again
// (SIGHUP), as `systemctl reload mosquitto` does: the password and ACL
// files, and a TLS listener's certfile and keyfile, which Mosquitto reads
// only at start and on a reload. Reloading is asynchronous: poll with a
// client until the change shows. A stopped broker reads them at its next
// start.
func (b *Broker) Reload() {
	b.t.Helper()
	b.mu.Lock()
	cmd := b.cmd
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatalf("mosquittotest: reload: %v", err)
	}
}

// Log returns what mosquitto printed so far, across restarts.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// lockedWriter lets the process's output be read while it is written.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

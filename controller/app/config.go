package app

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/release"
	"loaxa.vn/internal/brokerconn"
	"loaxa.vn/protocol"
)

// Config is the controller's configuration. DefaultConfig gives the values
// a newcomer gets from `go run ./controller`; LOAXA_* environment variables
// override them and command-line flags override both.
type Config struct {
	// HTTPAddr is the API and web UI listen address.
	HTTPAddr string
	// MQTTAddr is the embedded broker's listen address.
	MQTTAddr string
	// BrokerURL selects an external broker (tcp://user:pass@host:1883) and
	// disables the embedded one.
	BrokerURL string
	// DataDir holds the store (loaxa.db) and the audio (content/).
	DataDir string
	// PublicURL is the controller URL written into node credentials; empty
	// means the URL the enrolling request used.
	PublicURL string
	// PublicBroker is the broker URL written into node credentials; empty
	// means the embedded broker's port on the host of PublicURL (or of the
	// enrolling request), or BrokerURL without its credentials.
	PublicBroker string
	TopicPrefix  string
	// AdminPassword is the password of the bootstrap admin user, used only
	// when the store has no users. Environment only (LOAXA_ADMIN_PASSWORD),
	// so it never shows in a process list; empty generates one and prints
	// it once.
	AdminPassword string
	// StatusFlush is how often node statuses, kept in memory, are written
	// to the store (bolt.DB.StatusInterval): a crash loses at most this
	// much of them, which nodes report again when they reconnect.
	StatusFlush time.Duration
	// Horizon is how far ahead schedules are compiled into desired states.
	Horizon        time.Duration
	MaxUploadBytes int64
	LogLevel       slog.Level
	// TLSCert and TLSKey are PEM files; with them the API serves HTTPS and
	// the embedded broker MQTTS. TLSCA is the PEM certificate nodes pin to
	// verify the controller; empty pins the last certificate of TLSCert
	// (the self-signed certificate itself, or the top of its chain).
	TLSCert string
	TLSKey  string
	TLSCA   string
	// UpstreamURL is where exports are pushed (the province's
	// information-source system); empty: no push. UpstreamKey (env
	// LOAXA_UPSTREAM_KEY only) is sent as a bearer token; UpstreamEvery is
	// the period of one export; SystemID names this controller in them.
	UpstreamURL   string
	UpstreamKey   string
	UpstreamEvery time.Duration
	SystemID      string
	// RolloutInterval is how often rollouts look at their nodes (0:
	// release.DefaultInterval); no flag, tests shorten it.
	RolloutInterval time.Duration
	// RolloutNodeTimeout is how long a rollout waits for a node that is
	// not a canary before counting it unreached
	// (release.Runner.NodeTimeout).
	RolloutNodeTimeout time.Duration
	// MQTTMaxConnecting is how many connections the embedded broker lets
	// wait for their CONNECT at once (mqtt.Broker.MaxConnecting).
	MQTTMaxConnecting int
	// StoreMinFree is the free space on the data directory's volume below
	// which GET /health reports the disk check failed (and the console
	// says so): bbolt grows its file by up to 1 GiB at a time, and a full
	// disk stops the controller storing reports and sending alerts (an
	// alert is recorded before it is published). No flag; tests raise it.
	StoreMinFree int64
	// RetainDays, if not 0, is how many days of history (deliveries, node
	// events, audit entries, ended alarms) the controller keeps: once at
	// start and once a day it deletes what is older (bolt.DB.Purge).
	// 0, the default, keeps everything: how long the proof of broadcast
	// is kept is the province's decision. At least MinRetainDays.
	RetainDays int
	// DesiredBehindAfter is how long a node may be online running an
	// older desired state than the broker accepted before it is published
	// again (schedule.Scheduler.BehindAfter; 0: its default); no flag,
	// tests shorten it.
	DesiredBehindAfter time.Duration
	// ScheduleInterval is how often the scheduler recompiles every node
	// without being told (schedule.Scheduler.Interval; 0: its default of
	// 30 s): it rolls the horizon, and finds a node left behind
	// (DesiredBehindAfter). No flag; tests shorten it.
	ScheduleInterval time.Duration
	// PasswordCost is the bcrypt cost of the passwords the controller
	// sets (lhttp.Server.PasswordCost; 0: bcrypt.DefaultCost). No flag:
	// tests lower it, as bcrypt at the default cost takes about a second
	// of CPU under the race detector.
	PasswordCost int
	// ConsoleRefresh multiplies the periods after which the console's
	// screens ask again (web.Options.Refresh; 0: as shipped, 15 s for the
	// overview, 4 s for a bulletin's results). No flag: browser tests
	// shorten them rather than wait them out.
	ConsoleRefresh float64
	// Probing sets the probes of the areas' fan-out before their first
	// alert (emergency.Probing; the zero value: emergency.DefaultProbing,
	// Every below zero: none); no flag, tests and benchmarks set it.
	Probing emergency.Probing
	// Health holds the thresholds of the fleet health model
	// (controller/health); flags set the daily self-test and the offline
	// alarm threshold.
	Health health.Config
	// CapFeeds are CAP alert or Atom feed URLs polled every CapPoll
	// (controller/cap.Poller); their alerts act with whole-tree authority.
	CapFeeds []string
	CapPoll  time.Duration
	// CapAlertHosts are the hosts, besides each feed's own, that the
	// feeds' entries may link to and redirect to ("host" or "host:port";
	// controller/cap.Poller.AlertHosts).
	CapAlertHosts []string
}

// Bounds of the flags.
const (
	// minRolloutNodeTimeout is what a canary is given: a node needs as
	// long to download, wait for a quiet moment and pass its probation,
	// and one counted unreached sooner was only slow.
	minRolloutNodeTimeout = release.DefaultCanaryTimeout
	// minOfflineAlarm is the least --offline-alarm: a node's broker
	// connection lost (its Last Will) makes it offline at once, and a
	// 3G/4G link that drops is back within seconds; 0 opened a critical
	// alarm for each such blink.
	minOfflineAlarm = time.Minute
	// maxMQTTConnecting is the open files the controller's systemd unit
	// allows (LimitNOFILE): more connections could never be waiting.
	maxMQTTConnecting = 65536
	// MinRetainDays is the shortest retention: the longest span a report
	// can ask (lhttp.MaxReportSpan, 372 days, for the yearly report) and
	// four weeks more to ask for last year's report after it ends.
	MinRetainDays = 400
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:       ":8080",
		MQTTAddr:       ":1883",
		DataDir:        "./data",
		TopicPrefix:    protocol.DefaultPrefix,
		Horizon:        7 * 24 * time.Hour,
		StatusFlush:    bolt.DefaultStatusInterval,
		MaxUploadBytes: 200 << 20,
		LogLevel:       slog.LevelInfo,
		UpstreamEvery:  24 * time.Hour,
		SystemID:       "loaxa",
		Health:         health.DefaultConfig(),
		CapPoll:        time.Minute,
		StoreMinFree:   2 << 30,

		RolloutNodeTimeout: release.DefaultNodeTimeout,
		MQTTMaxConnecting:  brokerconn.DefaultMaxConnecting,
	}
}

// Parse applies environment overrides (getenv, usually os.Getenv) and then
// command-line flags to c.
func (c *Config) Parse(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	str := func(p *string, name, env, usage string) {
		if v := getenv(env); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" (env "+env+")")
	}
	str(&c.HTTPAddr, "http", "LOAXA_HTTP", "HTTP listen address for the API and web UI")
	str(&c.MQTTAddr, "mqtt", "LOAXA_MQTT", "embedded MQTT broker listen address")
	str(&c.BrokerURL, "broker", "LOAXA_BROKER", "external MQTT broker URL, e.g. tcp://user:pass@host:1883; disables the embedded broker")
	str(&c.DataDir, "data", "LOAXA_DATA", "data directory (store and audio)")
	str(&c.PublicURL, "public-url", "LOAXA_PUBLIC_URL", "controller URL written into node credentials (default: the URL used to enrol)")
	str(&c.PublicBroker, "public-broker", "LOAXA_PUBLIC_BROKER", "broker URL written into node credentials")
	str(&c.TopicPrefix, "topic-prefix", "LOAXA_TOPIC_PREFIX", "MQTT topic prefix")
	str(&c.TLSCert, "tls-cert", "LOAXA_TLS_CERT", "PEM certificate (chain) file: serve HTTPS and MQTTS (read again when it changes)")
	str(&c.TLSKey, "tls-key", "LOAXA_TLS_KEY", "PEM private key file of --tls-cert")
	str(&c.TLSCA, "tls-ca", "LOAXA_TLS_CA", "PEM certificate nodes pin to verify the controller (default: the last certificate of --tls-cert)")
	c.AdminPassword = getenv("LOAXA_ADMIN_PASSWORD")
	str(&c.UpstreamURL, "upstream-url", "LOAXA_UPSTREAM_URL", "HTTPS endpoint of the province's information-source system to push exports to")
	str(&c.SystemID, "system-id", "LOAXA_SYSTEM_ID", "this controller's name in exports, e.g. the province code")
	c.UpstreamKey = getenv("LOAXA_UPSTREAM_KEY")
	every := c.UpstreamEvery.String()
	str(&every, "upstream-every", "LOAXA_UPSTREAM_EVERY", "period of one export pushed upstream, counted from midnight in Vietnam (24h: one calendar day)")

	statusFlush := c.StatusFlush.String()
	str(&statusFlush, "status-flush", "LOAXA_STATUS_FLUSH", "how often node statuses kept in memory are written to the store")
	horizon := c.Horizon.String()
	str(&horizon, "horizon", "LOAXA_HORIZON", "how far ahead schedules are sent to nodes")
	upload := strconv.FormatInt(c.MaxUploadBytes, 10)
	str(&upload, "max-upload", "LOAXA_MAX_UPLOAD", "largest accepted upload in bytes")
	str(&c.Health.DailyTest, "daily-test", "LOAXA_DAILY_TEST", "local time HH:MM of the daily silent self-test of every online node; \"off\" for none")
	offlineAlarm := c.Health.OfflineAlarmAfter.String()
	str(&offlineAlarm, "offline-alarm", "LOAXA_OFFLINE_ALARM", "how long a node is offline before it raises an alarm")
	feeds := strings.Join(c.CapFeeds, ",")
	str(&feeds, "cap-feeds", "LOAXA_CAP_FEEDS", "comma-separated URLs of CAP alerts or Atom feeds of them to poll")
	alertHosts := strings.Join(c.CapAlertHosts, ",")
	str(&alertHosts, "cap-alert-hosts", "LOAXA_CAP_ALERT_HOSTS", "comma-separated hosts (host or host:port), besides each CAP feed's own, that its entries may link to")
	capPoll := c.CapPoll.String()
	str(&capPoll, "cap-poll", "LOAXA_CAP_POLL", "how often CAP feeds are polled (at most 1m)")
	nodeTimeout := c.RolloutNodeTimeout.String()
	str(&nodeTimeout, "rollout-node-timeout", "LOAXA_ROLLOUT_NODE_TIMEOUT", "how long an agent rollout waits for a node's answer before counting it unreached (at least "+minRolloutNodeTimeout.String()+")")
	maxConnecting := strconv.Itoa(c.MQTTMaxConnecting)
	str(&maxConnecting, "mqtt-max-connecting", "LOAXA_MQTT_MAX_CONNECTING", "how many connections the embedded broker lets wait for their CONNECT at once; it ends the next ones at once")
	retain := strconv.Itoa(c.RetainDays)
	str(&retain, "retain-days", "LOAXA_RETAIN_DAYS", "days of history (deliveries, node events, audit, ended alarms) to keep; older is deleted daily; 0 keeps everything (at least "+strconv.Itoa(MinRetainDays)+" otherwise)")
	level := strings.ToLower(c.LogLevel.String())
	str(&level, "log-level", "LOAXA_LOG_LEVEL", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Horizon, err = time.ParseDuration(horizon); err != nil || c.Horizon < 24*time.Hour {
		return fmt.Errorf("horizon %q: want a duration of at least 24h, e.g. 168h", horizon)
	}
	if c.StatusFlush, err = time.ParseDuration(statusFlush); err != nil || c.StatusFlush < 100*time.Millisecond || c.StatusFlush > time.Minute {
		return fmt.Errorf("status-flush %q: want a duration from 100ms to 1m, e.g. 5s", statusFlush)
	}
	if c.Health.OfflineAlarmAfter, err = time.ParseDuration(offlineAlarm); err != nil || c.Health.OfflineAlarmAfter < minOfflineAlarm {
		return fmt.Errorf("offline-alarm %q: want a duration of at least %v, e.g. 10m: shorter, every board whose 3G/4G link drops and is back within seconds (its broker connection lost, its Last Will sent) opens a critical offline alarm, and the real outages drown among them", offlineAlarm, minOfflineAlarm)
	}
	c.CapFeeds = nil
	for _, f := range strings.Split(feeds, ",") {
		if f = strings.TrimSpace(f); f != "" {
			if !strings.HasPrefix(f, "http://") && !strings.HasPrefix(f, "https://") {
				return fmt.Errorf("cap-feeds: %q is not an http(s) URL", f)
			}
			c.CapFeeds = append(c.CapFeeds, f)
		}
	}
	c.CapAlertHosts = nil
	for _, h := range strings.Split(alertHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if u, err := url.Parse("//" + h); err != nil || u.Host != h || u.Hostname() == "" || u.User != nil {
				return fmt.Errorf("cap-alert-hosts: %q: want a host name or host:port, e.g. cap.nchmf.gov.vn or cap.nchmf.gov.vn:8443", h)
			}
			c.CapAlertHosts = append(c.CapAlertHosts, h)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("public-url %q: want the controller's http(s) URL as boards reach it, e.g. https://loa.example.gov.vn", c.PublicURL)
		}
	}
	// A wildcard or NUL in the prefix makes every topic one no client may
	// publish on (MQTT), and the fleet would look offline with no error.
	if strings.ContainsAny(c.TopicPrefix, "+#\x00") || strings.HasPrefix(c.TopicPrefix, "$") {
		return fmt.Errorf("topic-prefix %q: an MQTT topic level without +, #, NUL or a leading $, e.g. loa/v1", c.TopicPrefix)
	}
	if c.UpstreamURL != "" {
		if u, err := url.Parse(c.UpstreamURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("upstream-url %q: want the system's http(s) URL, e.g. https://ttn.example.gov.vn/api/loaxa", c.UpstreamURL)
		}
	}
	if c.CapPoll, err = time.ParseDuration(capPoll); err != nil || c.CapPoll <= 0 || c.CapPoll > time.Minute {
		return fmt.Errorf("cap-poll %q: want a duration up to 1m, e.g. 30s", capPoll)
	}
	if c.Health.DailyTest == "off" {
		c.Health.DailyTest = ""
	}
	if err := c.Health.Validate(); err != nil {
		return err
	}
	if c.MaxUploadBytes, err = strconv.ParseInt(upload, 10, 64); err != nil || c.MaxUploadBytes <= 0 {
		return fmt.Errorf("max-upload %q: want a positive number of bytes", upload)
	}
	if c.RolloutNodeTimeout, err = time.ParseDuration(nodeTimeout); err != nil || c.RolloutNodeTimeout < minRolloutNodeTimeout {
		return fmt.Errorf("rollout-node-timeout %q: want a duration of at least %v (what a canary is given to download, wait for a quiet moment and pass its probation), e.g. 6h", nodeTimeout, minRolloutNodeTimeout)
	}
	if c.MQTTMaxConnecting, err = strconv.Atoi(maxConnecting); err != nil || c.MQTTMaxConnecting < 1 || c.MQTTMaxConnecting > maxMQTTConnecting {
		return fmt.Errorf("mqtt-max-connecting %q: want a number of connections from 1 to %d, e.g. 2048", maxConnecting, maxMQTTConnecting)
	}
	if c.UpstreamEvery, err = time.ParseDuration(every); err != nil || c.UpstreamEvery < time.Minute {
		return fmt.Errorf("upstream-every %q: want a duration of at least 1m, e.g. 24h", every)
	}
	if c.RetainDays, err = strconv.Atoi(retain); err != nil || c.RetainDays != 0 && c.RetainDays < MinRetainDays {
		return fmt.Errorf("retain-days %q: want 0 (keep everything) or a number of days of at least %d, so that the yearly report of the year before still finds its deliveries, e.g. 730 for two years", retain, MinRetainDays)
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log-level %q: want debug, info, warn or error", level)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("give both --tls-cert and --tls-key, or neither")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		return fmt.Errorf("--tls-ca needs --tls-cert and --tls-key")
	}
	return nil
}

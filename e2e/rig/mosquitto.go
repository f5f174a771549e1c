package rig

import (
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/protocol"
)

// Mosquitto is a real Mosquitto set up as a province installs it
// (docs/deploy.md): the configuration the controller exports
// (mqtt.MosquittoConf: anonymous clients refused, the username as client
// id) and, until Install, only the controller's two accounts. It skips
// the test when mosquitto is not installed.
type Mosquitto struct {
	*mosquittotest.Broker
	controllerURL string
}

// ControllerBroker is the controller's --broker for m, its account's
// credentials in the URL; for a nil m, "": the controller's embedded
// broker. Tests that run on either take a *Mosquitto that may be nil.
func (m *Mosquitto) ControllerBroker() string {
	if m == nil {
		return ""
	}
	return m.controllerURL
}

// StartMosquitto starts such a broker for tb. openFiles, if not zero, is
// its soft limit of open files (one per client connection).
func StartMosquitto(tb testing.TB, openFiles uint64) *Mosquitto {
	tb.Helper()
	user, pass := mqtt.ControllerUsername, loaxa.NewSecret()
	hash := loaxa.HashBrokerSecret(pass)
	pub := user + mqtt.PublishUsernameSuffix
	b := mosquittotest.Start(tb, mosquittotest.Options{
		PasswordFile: user + ":" + hash + "\n" + pub + ":" + hash + "\n",
		ACL:          "user " + user + "\ntopic readwrite loa/v1/#\n\nuser " + pub + "\ntopic write loa/v1/#\n",
		Config:       mosquittotest.Installed(tb, mqtt.MosquittoConf),
		OpenFiles:    openFiles,
	})
	u := url.URL{Scheme: "tcp", Host: b.Addr(), User: url.UserPassword(user, pass)}
	return &Mosquitto{Broker: b, controllerURL: u.String()}
}

// Install does what an operator does after enrolling: fetch the files
// from controller c, install them, reload Mosquitto. It returns once
// probe's node may connect (call it before that node's agent runs: the
// probe takes its client id) and the controller's publishing connection,
// refused until now, is up. On a nil m (the embedded broker, which knows
// every node as it is enrolled) it does nothing.
func (m *Mosquitto) Install(tb testing.TB, c *Controller, probe *protocol.Credentials) {
	tb.Helper()
	if m == nil {
		return
	}
	var files struct {
		Files   map[string]string
		Missing []string
	}
	c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
	if len(files.Missing) > 0 {
		tb.Fatalf("nodes left out of the password file: %v", files.Missing)
	}
	if files.Files["loaxa.conf"] != mqtt.MosquittoConf {
		tb.Fatalf("the controller exports another configuration than this broker runs:\n%s", files.Files["loaxa.conf"])
	}
	m.SetAuth(files.Files["loaxa.passwd"], files.Files["loaxa.acl"])
	Eventually(tb, time.Minute, "mosquitto knows the enrolled nodes", func() bool {
		o := paho.NewClientOptions().AddBroker(probe.Broker).SetClientID(probe.Node).
			SetUsername(probe.Username).SetPassword(probe.Secret).SetConnectTimeout(5 * time.Second)
		cl := paho.NewClient(o)
		tok := cl.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return false // the reload is asynchronous
		}
		cl.Disconnect(0)
		return true
	})
	// The publishing connection retries at most 10 s apart.
	Eventually(tb, time.Minute, "the controller's publishing connection", func() bool {
		return strings.Contains(m.Log(), " as "+mqtt.ControllerUsername+mqtt.PublishUsernameSuffix+" ")
	})
}

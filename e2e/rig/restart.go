package rig

import (
	"strings"

	"loaxa.vn/controller/app"
)

// Stop closes the controller: HTTP server, broker, store. Safe to call
// twice; the test's cleanup calls it.
func (c *Controller) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if err := c.App.Close(); err != nil {
		c.t.Errorf("close controller: %v", err)
	}
}

// Restart stops the controller and starts a new one on the same data
// directory, HTTP address and broker address, as a restarted controller
// process would be: nodes reconnect to it with the credentials they have.
// It returns the new controller, signed in as admin.
func (c *Controller) Restart() *Controller {
	c.t.Helper()
	httpAddr := strings.TrimPrefix(strings.TrimPrefix(c.URL, "http://"), "https://")
	mqttAddr := c.cfg.MQTTAddr
	if c.App.Broker != nil {
		mqttAddr = c.App.Broker.ListenAddr()
	}
	c.Stop()
	cfg, opt := c.cfg, c.opt
	opt.Configure = func(nc *app.Config) {
		*nc = cfg
		nc.HTTPAddr, nc.MQTTAddr = httpAddr, mqttAddr
	}
	return StartControllerWith(c.t, opt)
}

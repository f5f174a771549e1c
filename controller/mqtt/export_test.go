package mqtt

import "time"

// SetAckClock makes c hold acknowledgements by now instead of real time.
func SetAckClock(c *Client, now func() time.Time) { c.ackClock = now }

// SetPublishBrokerURL makes c's publish connection dial url instead of
// BrokerURL, so a test can put a proxy before one connection only.
func SetPublishBrokerURL(c *Client, url string) { c.publishBrokerURL = url }

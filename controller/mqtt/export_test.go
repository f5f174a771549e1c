package mqtt

import "time"

// SetAckClock makes c hold acknowledgements by now instead of real time.
func SetAckClock(c *Client, now func() time.Time) { c.ackClock = now }

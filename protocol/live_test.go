package protocol_test

import (
	"strings"
	"testing"

	"loaxa.vn/protocol"
)

func TestLiveValidate(t *testing.T) {
	for _, c := range []struct {
		l    protocol.Live
		want string // "" valid, else part of the error
	}{
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityEmergency}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Drill: true, Volume: 3}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Volume: protocol.MaxVolume + 1}, "volume"},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Volume: -1}, "volume"},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveAudio, Seq: 3, Audio: []byte{1}}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveAudio, Seq: 3, Audio: []byte{1}, Drill: true}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveEnd}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveEnd, Reason: protocol.LiveCut}, ""},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveEnd, Reason: "bored"}, "reason"},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart, Priority: protocol.PriorityNormal}, "priority"},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveStart}, "priority"},
		{protocol.Live{Call: "live-ab", Kind: protocol.LiveAudio}, "without audio"},
		{protocol.Live{Call: "live-ab", Kind: "pause"}, "kind"},
		{protocol.Live{Call: "", Kind: protocol.LiveEnd}, "live call"},
		{protocol.Live{Call: "Live/AB", Kind: protocol.LiveEnd}, "live call"},
	} {
		err := c.l.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.l, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one about %q", c.l, err, c.want)
		}
	}
}

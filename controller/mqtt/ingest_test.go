package mqtt

import (
	"testing"
	"time"

	"loaxa.vn/protocol"
)

// roundMessages returns what a node sends the controller in an alert's
// round, as the thin nodes of e2e/emergencybench send it (read from real
// agents): its state while playing (about 800 bytes) and its first event
// batch, received and content-ready (about 570 bytes).
func roundMessages(tb testing.TB) (state, events []byte) {
	tb.Helper()
	now := time.Date(2026, time.December, 2, 10, 0, 0, 0, time.UTC)
	amp, fault, mains, charging, door := true, false, true, true, false
	ohms, volts, temp, rssi := 7.9, 13.4, 38.5, -71
	disk, volume := int64(79274373120), 10
	occ := protocol.Occurrence{ID: "em-0f3a9c2d1b7e@20261202T100001.250Z", Announcement: "em-0f3a9c2d1b7e",
		Content: "9f2c4e6b8a0d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e", Priority: protocol.PriorityEmergency}
	st := protocol.State{
		Status: protocol.StatusOnline, At: now, Agent: "firmware-sim", DesiredVersion: 12,
		CacheBytes: 30900, CacheLimit: 536870912, Keys: []string{"3f1a2b4c5d6e7f80"}, HeartbeatMS: 60000,
		UptimeS: 5400, DiskFreeBytes: &disk, Volume: &volume, AmplifierPolicy: protocol.AmpAuto,
		Board: &protocol.Board{Amplifier: amp, AmplifierCommand: &amp, AmplifierFault: &fault, SpeakerLine: protocol.LineOK,
			SpeakerOhms: &ohms, Mains: &mains, BatteryVolts: &volts, Charging: &charging, TemperatureC: &temp, DoorOpen: &door,
			RSSIDBm: &rssi, Link: "4g"},
		Playing: &protocol.Playing{Occurrence: occ.ID, Content: occ.Content, Priority: occ.Priority, Since: now},
	}
	state, err := protocol.Encode(protocol.TypeState, "n-00042", "controller", 0, now, st)
	if err != nil {
		tb.Fatal(err)
	}
	evs := []protocol.Event{{Seq: 211, Type: protocol.EventReceived, At: now}, {Seq: 212, Type: protocol.EventContentReady, At: now}}
	for i := range evs {
		evs[i].Occurrence, evs[i].Announcement, evs[i].Content = occ.ID, occ.Announcement, occ.Content
	}
	events, err = protocol.Encode(protocol.TypeEvents, "n-00042", "controller", 211, now, protocol.EventBatch{Epoch: "5c0e1f7a9b3d2e4f", Events: evs})
	if err != nil {
		tb.Fatal(err)
	}
	return state, events
}

// BenchmarkOpenNodeMessage measures the parse and decode of every node
// message the ingest takes (openNodeMessage): 10,000 nodes send 3 event
// batches and 2–3 states each in an alert's round.
func BenchmarkOpenNodeMessage(b *testing.B) {
	state, events := roundMessages(b)
	b.Run("state", func(b *testing.B) {
		b.SetBytes(int64(len(state)))
		b.ReportAllocs()
		for b.Loop() {
			var st protocol.State
			if err := openNodeMessage("n-00042", protocol.TypeState, state, &st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("events", func(b *testing.B) {
		b.SetBytes(int64(len(events)))
		b.ReportAllocs()
		for b.Loop() {
			var eb protocol.EventBatch
			if err := openNodeMessage("n-00042", protocol.TypeEvents, events, &eb); err != nil {
				b.Fatal(err)
			}
		}
	})
}

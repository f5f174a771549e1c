package board

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"loaxa.vn/protocol"
)

// Fault names for Inject and the control endpoint: what a technician finds
// in the field.
const (
	FaultSpeakerOpen    = "speaker-open"    // the speaker line is cut
	FaultSpeakerShort   = "speaker-short"   // the speaker line is shorted
	FaultMainsOff       = "mains-off"       // a power cut: the box runs on its battery
	FaultBatteryLow     = "battery-low"     // the battery drained to its cut-off
	FaultOverheat       = "overheat"        // the enclosure at 75 °C
	FaultDoorOpen       = "door-open"       // the enclosure door (tamper switch) is open
	FaultWeakSignal     = "weak-signal"     // the modem at −110 dBm on 2G
	FaultAmplifierFault = "amplifier-fault" // the amplifier's fault output is on
	FaultRelayStuck     = "relay-stuck"     // the relay ignores commands
	FaultSoundCardOut   = "sound-card-out"  // the USB sound card is pulled out or dead
	FaultCardReadOnly   = "card-read-only"  // the SD card went read-only: the box restarts on a store in memory
)

// Faults lists every fault Inject knows.
var Faults = []string{
	FaultSpeakerOpen, FaultSpeakerShort, FaultMainsOff, FaultBatteryLow, FaultOverheat,
	FaultDoorOpen, FaultWeakSignal, FaultAmplifierFault, FaultRelayStuck, FaultSoundCardOut,
	FaultCardReadOnly,
}

// ErrUnknownFault is returned by Inject for a name not in Faults.
var ErrUnknownFault = errors.New("unknown fault")

// Injected values of the faults that set a measurement.
const (
	OverheatC      = 75.0
	WeakSignalDBm  = -110
	WeakSignalLink = "2g"
)

// Inject raises (on) or clears (off) the named fault. Clearing puts the
// input back to its healthy value: the line sound, mains on, the battery
// full, the enclosure at ambient, the door closed, the signal as
// configured.
func (b *Board) Inject(fault string, on bool) error {
	switch fault {
	case FaultSpeakerOpen, FaultSpeakerShort:
		l := protocol.LineOK
		if on {
			l = protocol.LineOpen
			if fault == FaultSpeakerShort {
				l = protocol.LineShort
			}
		}
		b.SetSpeakerLine(l)
	case FaultMainsOff:
		if on {
			b.CutMains()
		} else {
			b.RestoreMains()
		}
	case FaultBatteryLow:
		if on {
			b.SetBatteryVolts(b.cfg.BatteryCutOffVolts)
		} else {
			b.SetBatteryVolts(b.cfg.BatteryFullVolts)
		}
	case FaultOverheat:
		if on {
			b.SetTemperature(OverheatC)
		} else {
			b.SetTemperature(b.cfg.AmbientC)
		}
	case FaultDoorOpen:
		b.SetDoor(on)
	case FaultWeakSignal:
		if on {
			b.SetSignal(WeakSignalDBm, WeakSignalLink)
		} else {
			b.SetSignal(b.cfg.RSSIDBm, b.cfg.Link)
		}
	case FaultAmplifierFault:
		b.SetAmplifierFault(on)
	case FaultRelayStuck:
		b.StickRelay(on)
	case FaultSoundCardOut:
		b.SetSoundCard(!on)
	case FaultCardReadOnly:
		b.SetCardReadOnly(on)
	default:
		return fmt.Errorf("%w %q; known faults: %s", ErrUnknownFault, fault, strings.Join(Faults, ", "))
	}
	return nil
}

// Control serves fault injection over HTTP for the boards find returns
// (nil: no such board), so a fleet runner's boxes can be broken and mended
// from a script or another process's test:
//
//	GET    /boards/{id}                  the board's snapshot (protocol.Board)
//	POST   /boards/{id}/faults/{fault}   raise a fault (one of Faults)
//	DELETE /boards/{id}/faults/{fault}   clear it
//	GET    /faults                       the fault names
//
// Answers are JSON; errors are {"error": "..."} with 400 or 404.
func Control(find func(id string) *Board) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	board := func(w http.ResponseWriter, r *http.Request) *Board {
		b := find(r.PathValue("id"))
		if b == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no simulated board %q", r.PathValue("id"))})
		}
		return b
	}
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"faults": slices.Clone(Faults)})
	})
	mux.HandleFunc("GET /boards/{id}", func(w http.ResponseWriter, r *http.Request) {
		if b := board(w, r); b != nil {
			writeJSON(w, http.StatusOK, b.Snapshot())
		}
	})
	inject := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b := board(w, r)
			if b == nil {
				return
			}
			if err := b.Inject(r.PathValue("fault"), on); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, b.Snapshot())
		}
	}
	mux.HandleFunc("POST /boards/{id}/faults/{fault}", inject(true))
	mux.HandleFunc("DELETE /boards/{id}/faults/{fault}", inject(false))
	return mux
}

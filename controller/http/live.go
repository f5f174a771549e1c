package http

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// Live broadcast (phát trực tiếp, docs/live.md): GET /api/v1/live
// upgrades to a WebSocket. The client sends binary messages of 16 kHz mono
// signed 16-bit little-endian PCM, in real time (20–40 ms a message is
// right); the controller cuts them into 40 ms frames, encodes each as IMA
// ADPCM and publishes it, signed, on every target area's live topic. The
// call begins with a signed start and ends with a signed end when the
// client closes or disconnects. The server sends text messages of
// liveStatus.

const (
	auditLiveStart = "live.start"
	auditLiveStop  = "live.stop"
)

// maxLiveMessage bounds one client message: a second of PCM.
const maxLiveMessage = 2 * nodeaudio.SampleRate

// liveStatus is what the server says on the WebSocket, as JSON text.
type liveStatus struct {
	State    string   `json:"state"` // "on_air", then "ended"
	Call     string   `json:"call"`
	Areas    []string `json:"areas,omitempty"`
	Priority string   `json:"priority,omitempty"`
	Frames   uint64   `json:"frames,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "areas", "priority", "title"); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	prio := protocol.Priority(q.Get("priority"))
	action := loaxa.ActionSchedule
	switch prio {
	case "":
		prio = protocol.PriorityHigh
	case protocol.PriorityHigh:
	case protocol.PriorityEmergency:
		action = loaxa.ActionEmergency
	default:
		return loaxa.Errorf(loaxa.EInvalid, "priority %q: a live call is %q (the default) or %q.", prio, protocol.PriorityHigh, protocol.PriorityEmergency)
	}
	var areas []string
	for _, a := range strings.Split(q.Get("areas"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			areas = append(areas, a)
		}
	}
	if len(areas) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "areas is empty: name the areas to speak to, e.g. /api/v1/live?areas=31,32.")
	}
	for _, a := range areas {
		if _, err := s.requireArea(ctx, "areas", a); err != nil {
			return err
		}
		if err := s.authorize(ctx, action, a); err != nil {
			return err
		}
	}
	title, err := cleanText("title", q.Get("title"), false)
	if err != nil {
		return err
	}
	if s.Live == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Live broadcasting is not set up on this controller.")
	}
	// Accept checks that the Origin is this host: a page of another site
	// cannot open a call with the officer's session cookie.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(maxLiveMessage)
	call := "live-" + strings.ToLower(rand.Text()[:16])
	user := userFrom(ctx).Username
	detail := fmt.Sprintf("priority=%s title=%q", prio, title)
	s.audit(r, auditLiveStart, call, strings.Join(areas, ","), detail)
	s.logger().Warn("live call on air", "call", call, "areas", areas, "priority", prio, "user", user)

	frames, reason := s.runLive(ctx, c, call, areas, prio, title)

	s.audit(r, auditLiveStop, call, strings.Join(areas, ","), fmt.Sprintf("%s frames=%d reason=%s", detail, frames, reason))
	s.logger().Info("live call over", "call", call, "frames", frames, "reason", reason)
	return nil
}

// runLive sends the call's start, its frames and its end; it returns the
// frames sent and why the call ended.
func (s *Server) runLive(ctx context.Context, c *websocket.Conn, call string, areas []string, prio protocol.Priority, title string) (uint64, string) {
	send := func(ctx context.Context, l protocol.Live) error {
		l.Call = call
		for _, a := range areas {
			if err := s.Live.SendLive(ctx, a, l); err != nil {
				return err
			}
		}
		return nil
	}
	// The end goes out even when the client's request is gone.
	end := func(frames uint64, reason string) (uint64, string) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := send(ctx, protocol.Live{Kind: protocol.LiveEnd}); err != nil {
			s.logger().Error("live call: end not sent; nodes end it on their frame timeout", "call", call, "err", err)
		}
		status(ctx, c, liveStatus{State: "ended", Call: call, Frames: frames, Reason: reason})
		c.Close(websocket.StatusNormalClosure, "")
		return frames, reason
	}
	if err := send(ctx, protocol.Live{Kind: protocol.LiveStart, Priority: prio, Title: title}); err != nil {
		c.Close(websocket.StatusInternalError, "broker unavailable")
		return 0, "start not sent: " + err.Error()
	}
	status(ctx, c, liveStatus{State: "on_air", Call: call, Areas: areas, Priority: string(prio)})
	var (
		enc     nodeaudio.FrameEncoder
		pcm     = make([]int16, 0, 2*nodeaudio.FrameSamples)
		seq     uint64
		started = time.Now()
	)
	flush := func(all bool) error {
		for len(pcm) >= nodeaudio.FrameSamples || (all && len(pcm) > 0) {
			if len(pcm) < nodeaudio.FrameSamples {
				pcm = append(pcm, make([]int16, nodeaudio.FrameSamples-len(pcm))...)
			}
			f, err := enc.Encode(pcm[:nodeaudio.FrameSamples])
			if err != nil {
				return err
			}
			pcm = append(pcm[:0], pcm[nodeaudio.FrameSamples:]...)
			if err := send(ctx, protocol.Live{Kind: protocol.LiveAudio, Seq: seq, Audio: f}); err != nil {
				return err
			}
			seq++
		}
		return nil
	}
	for {
		if time.Since(started) > protocol.MaxLiveDuration {
			return end(seq, "longest call reached")
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			reason := "client disconnected"
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				reason = "speaker stopped"
			} else if errors.Is(err, context.Canceled) {
				reason = "server shutting down"
			}
			if ferr := flush(true); ferr != nil {
				s.logger().Warn("live call: last frame not sent", "call", call, "err", ferr)
			}
			return end(seq, reason)
		}
		if typ != websocket.MessageBinary {
			if strings.TrimSpace(string(data)) == `{"type":"end"}` {
				if err := flush(true); err != nil {
					return end(seq, "frame not sent: "+err.Error())
				}
				return end(seq, "speaker stopped")
			}
			continue // other text is for future use
		}
		if len(data)%2 != 0 {
			status(ctx, c, liveStatus{State: "ended", Call: call, Reason: "odd message length"})
			return end(seq, fmt.Sprintf("message of %d bytes is not 16-bit PCM", len(data)))
		}
		for i := 0; i < len(data); i += 2 {
			pcm = append(pcm, int16(binary.LittleEndian.Uint16(data[i:])))
		}
		if err := flush(false); err != nil {
			return end(seq, "frame not sent: "+err.Error())
		}
	}
}

func status(ctx context.Context, c *websocket.Conn, st liveStatus) {
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, b)
}

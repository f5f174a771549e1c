package http

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// Live broadcast (phát trực tiếp, docs/live.md): GET /api/v1/live
// upgrades to a WebSocket. The client sends binary messages of 16 kHz mono
// signed 16-bit little-endian PCM, in real time (20–40 ms a message is
// right); the controller cuts them into 60 ms narrowband frames, encodes
// each as IMA ADPCM at 8 kHz (nodeaudio.NarrowFrameEncoder) and publishes
// it, signed, in a compact envelope on every target area's live topic. The
// call begins with a signed start and ends with a signed end when the
// client closes or disconnects. The server sends text messages of
// liveStatus.

const (
	auditLiveStart = "live.start"
	auditLiveCut   = "live.cut"
)

// maxLiveMessage bounds one client message: a second of PCM.
const maxLiveMessage = 2 * nodeaudio.SampleRate

// maxDroppedFrames is a second of frames: an area whose frames could not
// be published for that long in a row is failing (the speaker is told),
// and a call whose every area is failing ends: the broker is gone. (25 was
// a second of the 40 ms frames; the narrowband frames are 60 ms.)
const maxDroppedFrames = (nodeaudio.SampleRate + nodeaudio.NarrowFrameWide - 1) / nodeaudio.NarrowFrameWide

// liveOnAirWait is how long a call waits for the other areas' starts once
// one area took its start, before it goes on air without them: a broker
// that answers takes them all within it, so the first status names only
// the areas slow or failing. (The call waited for every area's start: one
// slow commune held the officer's "on air" and every other commune's
// audio until its publish timed out, 10 s.)
const liveOnAirWait = 200 * time.Millisecond

// liveSendInflight bounds the starts or ends of a call published at once.
// Each waits for the broker's PUBACK (QoS 1); sent area after area, a slow
// area held back every other area's start, and its end. 64 at once, as
// for the event acknowledgements (controller/mqtt), bound what the client
// holds for a broker that stopped answering.
const liveSendInflight = 64

// sessionCheck is how often what a request holds open (a live call, an
// alarm stream) checks that its officer's session still holds and still
// allows it: signed out, revoked (a lost phone), expired or no longer
// allowed, it ends (sessionEnded).
var sessionCheck = time.Second

// StatusLiveCut is the WebSocket close code of a call an officer cut
// (an application code, 4000–4999); the last status message says who.
const StatusLiveCut websocket.StatusCode = 4001

// liveStatus is what the server says on the WebSocket, as JSON text.
type liveStatus struct {
	State    string   `json:"state"` // "on_air", then "ended"
	Call     string   `json:"call"`
	Areas    []string `json:"areas,omitempty"`
	Priority string   `json:"priority,omitempty"`
	Drill    bool     `json:"drill,omitempty"`
	Volume   int      `json:"volume,omitempty"`
	Frames   uint64   `json:"frames,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	CutBy    string   `json:"cut_by,omitempty"`
	// Started and Ended, in an "ended" status, are the call's times as
	// recorded: the console says how long it was on air from them (the
	// frame count is a technician's figure).
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	// FailingAreas, in an "on_air" status, are the areas the call does
	// not reach now (their start not taken by the broker yet, or not
	// published, or a second of frames in a row not published; Detail
	// says why): the call goes on for the others. Each "on_air" status
	// after the first gives the whole list; without it, every area is
	// reached.
	FailingAreas []string `json:"failing_areas,omitempty"`
	// Held, in an "on_air" status, are the alerts on air on some of the
	// call's clusters when it came, which hold it back there: how many
	// clusters wait for each to end, joined the call after it, or missed
	// it (the call's summary's held_by). Each "on_air" status after a
	// change gives the whole list.
	Held []loaxa.LiveHold `json:"held,omitempty"`
	// Preempted, in an "on_air" status, is how many clusters an emergency
	// alert (or another higher level) cut the call off on: it is not
	// resumed there. Each "on_air" status after a change gives it.
	Preempted int `json:"preempted,omitempty"`
	// Nodes, in an "on_air" status, is how many clusters the call is for
	// (those of its areas when it began, and any that joined since): with
	// Preempted as many, no cluster plays it any more, and the console
	// says the call is no longer heard.
	Nodes int `json:"nodes,omitempty"`
}

// liveHoldCheck is how often a call on air looks up which of its clusters
// alerts hold back, to tell the speaker (liveStatus.Held): nodes report
// it, and when they join, within a second or two. The look-up is from
// memory unless a node reported a hold since (live.Service.Events).
var liveHoldCheck = time.Second

// liveCallAction is what a user's role must grant on every area of a
// call to make it, or to cut it.
func liveCallAction(prio protocol.Priority) loaxa.Action {
	if prio == protocol.PriorityEmergency {
		return loaxa.ActionEmergency
	}
	return loaxa.ActionSchedule
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "areas", "priority", "title", "drill", "volume"); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	prio := protocol.Priority(q.Get("priority"))
	switch prio {
	case "":
		prio = protocol.PriorityHigh
	case protocol.PriorityHigh, protocol.PriorityEmergency:
	default:
		return loaxa.Errorf(loaxa.EInvalid, "priority %q: a live call is %q (the default) or %q.", prio, protocol.PriorityHigh, protocol.PriorityEmergency)
	}
	var areas []string
	for _, a := range strings.Split(q.Get("areas"), ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(areas, a) {
			areas = append(areas, a)
		}
	}
	if len(areas) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "areas is empty: name the areas to speak to, e.g. /api/v1/live?areas=31,32.")
	}
	if len(areas) > MaxTargets {
		return loaxa.Errorf(loaxa.EInvalid, "areas: %d areas; name at most %d (a common ancestor covers them all).", len(areas), MaxTargets)
	}
	for _, a := range areas {
		if _, err := s.requireArea(ctx, "areas", a); err != nil {
			return err
		}
		if err := s.authorize(ctx, liveCallAction(prio), a); err != nil {
			return err
		}
	}
	// Areas inside another of them are left out, as for an emergency: each
	// frame is published once per area, and a node below two of them got
	// every frame twice (112 kbit/s against the 64 kbit/s a call may take).
	areas, err := loaxa.FoldAreas(ctx, s.AreaService, areas)
	if err != nil {
		return err
	}
	title, err := cleanText("title", q.Get("title"), false)
	if err != nil {
		return err
	}
	drill := false
	if v := q.Get("drill"); v != "" {
		if drill, err = strconv.ParseBool(v); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "drill %q: write 1 or true for an exercise (diễn tập), 0 or false (the default) for a real call.", v)
		}
	}
	volume := 0
	if v := q.Get("volume"); v != "" {
		if volume, err = strconv.Atoi(v); err != nil || volume < 1 || volume > protocol.MaxVolume {
			return loaxa.Errorf(loaxa.EInvalid, "volume %q: give a level from 1 (quiet, e.g. for a drill) to %d (full), or leave it out for each node's own volume.", v, protocol.MaxVolume)
		}
	}
	if s.Live == nil || s.LiveCalls == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Live broadcasting is not set up on this controller.")
	}
	// A call holds the server open until it ends: Close waits for it.
	s.liveMu.Lock()
	select {
	case <-s.closing:
		s.liveMu.Unlock()
		return loaxa.Errorf(loaxa.EUnavailable, "The controller is shutting down; call again when it is back.")
	default:
	}
	s.lives.Add(1)
	s.liveMu.Unlock()
	defer s.lives.Done()
	// Accept checks that the Origin is this host: a page of another site
	// cannot open a call with the officer's session cookie.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered
	}
	defer c.CloseNow()
	// The library closes the connection on a message over its limit, so
	// the limit is above the call's: a message over maxLiveMessage is
	// refused with a status (runLive), one over twice that by the library.
	c.SetReadLimit(2 * maxLiveMessage)
	user := userFrom(ctx).Username
	rec := &loaxa.LiveCall{ID: loaxa.LiveCallIDPrefix + strings.ToLower(rand.Text()[:16]), CreatedBy: user,
		Areas: areas, Priority: prio, Title: title, Drill: drill, Volume: volume, Started: s.now()}
	cut, err := s.LiveCalls.BeginCall(ctx, rec)
	if err != nil {
		s.logger().Error("live call not begun", "areas", areas, "drill", drill, "user", user, "err", err)
		status(ctx, c, liveStatus{State: "ended", Call: rec.ID, Drill: drill, Reason: loaxa.LiveEndNotStarted, Detail: "the call could not be recorded; try again"})
		c.Close(websocket.StatusInternalError, "call not recorded")
		return nil
	}
	// BeginCall marks a drill's title.
	s.auditIn(r, auditLiveStart, rec.ID, areas, fmt.Sprintf("drill=%t priority=%s volume=%d title=%q", rec.Drill, prio, rec.Volume, rec.Title))
	s.logger().Warn("live call on air", "call", rec.ID, "areas", areas, "priority", prio, "drill", rec.Drill, "volume", rec.Volume, "user", user, "nodes", rec.Nodes)

	// The service audits the end (live.stop) when it records it.
	end := s.runLive(ctx, c, rec, cut)
	s.logger().Info("live call over", "call", rec.ID, "drill", end.Drill, "frames", end.FramesSent, "dropped", end.FramesDropped, "reason", end.EndReason, "cut_by", end.CutBy)
	return nil
}

// liveRun is what a call on air has sent so far. The record has the counts
// only once the call ended: an officer watching a call saw frames_sent 0
// until then.
type liveRun struct {
	feeds *liveFeeds
	bytes atomic.Uint64 // the PCM the client sent
}

// withLiveCounts sets the counts of c, if it is on air here, to what its
// runner has sent so far.
func (s *Server) withLiveCounts(c *loaxa.LiveCall) {
	if !c.Active() {
		return
	}
	if v, ok := s.liveRuns.Load(c.ID); ok {
		r := v.(*liveRun)
		c.FramesSent, c.FramesDropped = r.feeds.Counts()
		c.Bytes = r.bytes.Load()
	}
}

// wsMessage is one read from the client.
type wsMessage struct {
	typ  websocket.MessageType
	data []byte
	err  error
}

// runLive sends the call's start, its frames and its end, and records the
// end; it returns the ended record.
func (s *Server) runLive(ctx context.Context, c *websocket.Conn, rec *loaxa.LiveCall, cut <-chan struct{}) *loaxa.LiveCall {
	var result loaxa.LiveCallEnd
	// send publishes the end to every area, up to liveSendInflight at
	// once, and returns the areas it did not reach, in the call's order.
	send := func(ctx context.Context, l protocol.Live) ([]string, error) {
		l.Call, l.Drill = rec.ID, rec.Drill // every message says whether it is a drill
		errs := make([]error, len(rec.Areas))
		slots := make(chan struct{}, liveSendInflight)
		var wg sync.WaitGroup
		for i, a := range rec.Areas {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				if err := s.Live.SendLive(ctx, a, l); err != nil {
					errs[i] = fmt.Errorf("area %s: %w", a, err)
				}
			})
		}
		wg.Wait()
		var failed []string
		for i, err := range errs {
			if err != nil {
				failed = append(failed, rec.Areas[i])
			}
		}
		return failed, errors.Join(errs...)
	}
	// The frames go to each area on its own (livefeed.go).
	var feeds *liveFeeds
	run := &liveRun{}
	// The end goes out, and is recorded, even when the client's request
	// is gone.
	finish := func(reason, detail string) *loaxa.LiveCall {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		endMsg := protocol.Live{Kind: protocol.LiveEnd}
		if reason == loaxa.LiveEndCut {
			endMsg.Reason = protocol.LiveCut
		}
		if feeds != nil {
			// Each area's frames go out before its end; a cut call's
			// queued frames are dropped.
			result.FramesSent, result.FramesDropped = feeds.Close(reason != loaxa.LiveEndCut)
		}
		if _, err := send(ctx, endMsg); err != nil {
			s.logger().Error("live call: end not sent; nodes end it on their frame timeout", "call", rec.ID, "drill", rec.Drill, "err", err)
		}
		result.Reason, result.Detail, result.Bytes = reason, detail, run.bytes.Load()
		ended, err := s.LiveCalls.EndCall(ctx, rec.ID, result)
		if err != nil {
			s.logger().Error("live call: end not recorded", "call", rec.ID, "drill", rec.Drill, "err", err)
			cp := *rec
			cp.Ended, cp.EndReason, cp.EndDetail = s.now(), reason, detail
			cp.FramesSent, cp.FramesDropped, cp.Bytes = result.FramesSent, result.FramesDropped, result.Bytes
			ended = &cp
		}
		status(ctx, c, liveStatus{State: "ended", Call: rec.ID, Drill: rec.Drill, Frames: ended.FramesSent, Started: ended.Started, Ended: ended.Ended,
			Reason: ended.EndReason, Detail: ended.EndDetail, CutBy: ended.CutBy})
		code, text := websocket.StatusNormalClosure, ""
		switch ended.EndReason {
		case loaxa.LiveEndCut:
			code, text = StatusLiveCut, "call cut by "+ended.CutBy
			if len(text) > 120 {
				text = "call cut"
			}
		case loaxa.LiveEndShutdown:
			code = websocket.StatusGoingAway
		case loaxa.LiveEndBadAudio:
			code = websocket.StatusUnsupportedData
		case loaxa.LiveEndBroker:
			code = websocket.StatusInternalError
		}
		c.Close(code, text)
		return ended
	}
	// Each area gets the start, then the frames, on its own (livefeed.go):
	// the call is on air once one area took its start.
	feeds = newLiveFeeds(ctx, rec.Areas, protocol.Live{Call: rec.ID, Drill: rec.Drill, Kind: protocol.LiveStart,
		Priority: rec.Priority, Title: rec.Title, Volume: rec.Volume}, s.Live.SendLive)
	// Counted as the call runs; the ended record has the final counts
	// before it is let go.
	run.feeds = feeds
	s.liveRuns.Store(rec.ID, run)
	defer s.liveRuns.Delete(rec.ID)
	select {
	case <-feeds.taken:
	case <-feeds.gone:
		return finish(loaxa.LiveEndBroker, feeds.GoneErr().Error())
	case <-cut:
		return finish(loaxa.LiveEndCut, "")
	case <-s.closing:
		return finish(loaxa.LiveEndShutdown, "")
	}
	// The others' starts, from a broker that answers, come at once: the
	// first status names only the areas slow or failing.
	wait := time.NewTimer(liveOnAirWait)
	select {
	case <-feeds.answered:
	case <-wait.C:
	}
	wait.Stop()
	onAir := liveStatus{State: "on_air", Call: rec.ID, Areas: rec.Areas, Priority: string(rec.Priority), Drill: rec.Drill, Volume: rec.Volume}
	// tell tells the speaker the call is on air, and which areas it does
	// not reach now (their start not taken yet or not published, or their
	// frames not published): it goes on for the others. It says nothing
	// the speaker was told already (an area's start taken before the
	// first status), and reports whether it said anything.
	var told *liveStatus
	// held are the alerts holding the call back on some of its clusters,
	// as last looked up.
	var held []loaxa.LiveHold
	// preempted is how many clusters an alert cut the call off on, of the
	// nodes the call is for, as last looked up.
	preempted, nodes := 0, rec.Nodes
	tell := func() bool {
		st := onAir
		areas, why := feeds.Failing()
		if why != nil {
			st.FailingAreas, st.Detail = slices.Sorted(slices.Values(areas)), why.Error()
		}
		st.Held, st.Preempted, st.Nodes = held, preempted, nodes
		if told != nil && slices.Equal(st.FailingAreas, told.FailingAreas) && st.Detail == told.Detail && slices.Equal(st.Held, told.Held) &&
			st.Preempted == told.Preempted && st.Nodes == told.Nodes {
			return false
		}
		told = &st
		status(ctx, c, st)
		return true
	}
	tell()
	if len(told.FailingAreas) > 0 {
		s.logger().Error("live call on air, not reaching some areas (yet); the call goes on for the others", "call", rec.ID, "drill", rec.Drill, "areas", told.FailingAreas, "detail", told.Detail)
	}
	failing := func() {
		switch {
		case !tell():
		case len(told.FailingAreas) > 0:
			s.logger().Error("live call: not reaching some areas; the call goes on for the others", "call", rec.ID, "drill", rec.Drill, "areas", told.FailingAreas, "detail", told.Detail)
		default:
			s.logger().Info("live call: reaching every area", "call", rec.ID, "drill", rec.Drill)
		}
	}

	// The client is read in its own goroutine so that a cut or a shutdown
	// ends the call while a read waits.
	msgs := make(chan wsMessage)
	quit := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			typ, data, err := c.Read(ctx)
			select {
			case msgs <- wsMessage{typ, data, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(quit)
		c.CloseNow()
		<-readerDone
	}()

	var (
		// Narrowband frames: 60 ms in 244 bytes, so that a signed frame
		// stays within 64 kbit/s (docs/live.md).
		enc nodeaudio.NarrowFrameEncoder
		pcm = make([]int16, 0, 2*nodeaudio.NarrowFrameWide)
		seq uint64
	)
	flush := func(all bool) error {
		for len(pcm) >= nodeaudio.NarrowFrameWide || (all && len(pcm) > 0) {
			if len(pcm) < nodeaudio.NarrowFrameWide {
				pcm = append(pcm, make([]int16, nodeaudio.NarrowFrameWide-len(pcm))...)
			}
			f, err := enc.Encode(pcm[:nodeaudio.NarrowFrameWide])
			if err != nil {
				return fmt.Errorf("frame %d not encoded: %w", seq, err)
			}
			pcm = append(pcm[:0], pcm[nodeaudio.NarrowFrameWide:]...)
			// A frame that is not published is dropped, not waited for:
			// nodes play it as silence. A second of them in every area
			// ends the call (feeds.gone).
			feeds.Send(protocol.Live{Call: rec.ID, Drill: rec.Drill, Kind: protocol.LiveAudio, Seq: seq, Audio: f})
			seq++
		}
		return nil
	}
	longest := time.NewTimer(protocol.MaxLiveDuration)
	defer longest.Stop()
	session := time.NewTicker(sessionCheck)
	defer session.Stop()
	holds := time.NewTicker(liveHoldCheck)
	defer holds.Stop()
	for {
		select {
		case <-holds.C:
			// Alerts on air on some clusters hold the call back there:
			// the speaker is told which and how many, and when they join.
			h, err := s.LiveCalls.LiveCallHolds(ctx, rec.ID)
			if err != nil {
				s.logger().Warn("live call: clusters held behind an alert not looked up", "call", rec.ID, "drill", rec.Drill, "err", err)
				continue
			}
			if !slices.Equal(h, held) {
				held = h
				if tell() {
					s.logger().Info("live call: clusters held behind alerts", "call", rec.ID, "drill", rec.Drill, "held", fmt.Sprintf("%+v", held))
				}
			}
			// An alert that came during the call cuts it off on its
			// clusters for good: the speaker, talking on, is told.
			if n, of, err := s.LiveCalls.LiveCallPreempted(ctx, rec.ID); err != nil {
				s.logger().Warn("live call: clusters cut off by an alert not looked up", "call", rec.ID, "drill", rec.Drill, "err", err)
			} else if n != preempted || of != nodes {
				preempted, nodes = n, of
				if tell() {
					s.logger().Info("live call: cut off on clusters by a higher level", "call", rec.ID, "drill", rec.Drill, "preempted", n, "nodes", of)
				}
			}
		case <-session.C:
			if detail := s.sessionEnded(ctx, liveCallAction(rec.Priority), rec.Areas); detail != "" {
				if err := flush(true); err != nil {
					s.logger().Warn("live call: last frame not sent", "call", rec.ID, "drill", rec.Drill, "err", err)
				}
				return finish(loaxa.LiveEndSignedOut, detail)
			}
		case <-cut:
			return finish(loaxa.LiveEndCut, "")
		case <-feeds.changed:
			failing()
		case <-feeds.gone:
			return finish(loaxa.LiveEndBroker, feeds.GoneErr().Error())
		case <-s.closing:
			return finish(loaxa.LiveEndShutdown, "")
		case <-longest.C:
			return finish(loaxa.LiveEndLongest, "")
		case m := <-msgs:
			if m.err != nil {
				reason, detail := loaxa.LiveEndDisconnected, ""
				switch {
				case websocket.CloseStatus(m.err) == websocket.StatusNormalClosure:
					reason = loaxa.LiveEndSpeakerStopped
				case errors.Is(m.err, context.Canceled):
					reason = loaxa.LiveEndShutdown
				case errors.Is(m.err, websocket.ErrMessageTooBig), websocket.CloseStatus(m.err) == websocket.StatusMessageTooBig:
					reason, detail = loaxa.LiveEndBadAudio, fmt.Sprintf("a message over %d bytes (send 20–40 ms at a time)", maxLiveMessage)
				}
				if err := flush(true); err != nil {
					s.logger().Warn("live call: last frame not sent", "call", rec.ID, "drill", rec.Drill, "err", err)
				}
				return finish(reason, detail)
			}
			var (
				end  bool
				took int
				bad  error
			)
			pcm, took, end, bad = appendLiveMessage(pcm, m.typ, m.data)
			switch {
			case bad != nil:
				return finish(loaxa.LiveEndBadAudio, bad.Error())
			case end:
				if err := flush(true); err != nil {
					return finish(loaxa.LiveEndBadAudio, err.Error())
				}
				return finish(loaxa.LiveEndSpeakerStopped, "")
			case m.typ != websocket.MessageBinary:
				continue
			}
			run.bytes.Add(uint64(took))
			if err := flush(false); err != nil {
				return finish(loaxa.LiveEndBadAudio, err.Error())
			}
		}
	}
}

// appendLiveMessage reads one message of a live call's client. A binary
// message is 16-bit little-endian PCM of an even length up to
// maxLiveMessage bytes: its samples are appended to pcm and took is its
// length; another is refused with an error that says what was wrong (the
// call's end detail). A text message is JSON, however it is spaced
// ({"type": "end"} from Python's json.dumps): end is set for the end;
// other text is for future use, and ignored.
func appendLiveMessage(pcm []int16, typ websocket.MessageType, data []byte) (_ []int16, took int, end bool, err error) {
	if typ != websocket.MessageBinary {
		return pcm, 0, isLiveEnd(data), nil
	}
	if len(data) > maxLiveMessage {
		return pcm, 0, false, fmt.Errorf("a message of %d bytes, over %d (send 20–40 ms at a time)", len(data), maxLiveMessage)
	}
	if len(data)%2 != 0 {
		return pcm, 0, false, fmt.Errorf("a message of %d bytes is not 16-bit PCM", len(data))
	}
	for i := 0; i < len(data); i += 2 {
		pcm = append(pcm, int16(binary.LittleEndian.Uint16(data[i:])))
	}
	return pcm, len(data), false, nil
}

// isLiveEnd reports whether a text message is the end: a JSON object whose
// field "type", named exactly so (as the console and `controller live`
// send it), is "end". Decoded into a struct, encoding/json matched the name
// in any case: {"TYPE":"end"} ended a call, and a field "Type" after "type"
// took its place.
func isLiveEnd(data []byte) bool {
	var msg map[string]json.RawMessage
	if json.Unmarshal(data, &msg) != nil {
		return false
	}
	var typ string
	return json.Unmarshal(msg["type"], &typ) == nil && typ == "end"
}

// sessionEnded says why the session of the request in ctx no longer
// holds, or "" if it does: signed out, revoked or expired, or its user no
// longer allowed action on one of areas ("" the whole tree).
func (s *Server) sessionEnded(ctx context.Context, action loaxa.Action, areas []string) string {
	u, err := s.UserService.UserByToken(ctx, callerFrom(ctx).token)
	switch code := loaxa.ErrorCode(err); {
	case code == loaxa.EUnauthorized || code == loaxa.ENotFound:
		return "the session ended (signed out, revoked or expired)"
	case err != nil:
		// The store is busy or away: not a reason to cut an officer off.
		s.logger().Warn("session not checked", "err", err)
		return ""
	}
	for _, a := range areas {
		if err := loaxa.Authorize(ctx, s.AreaService, u, action, a); err != nil {
			return fmt.Sprintf("%s may no longer do %s in area %q", u.Username, action, a)
		}
	}
	return ""
}

func status(ctx context.Context, c *websocket.Conn, st liveStatus) {
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, b)
}

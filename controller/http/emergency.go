package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Audit actions of emergencies.
const (
	auditEmergencySend     = "emergency.send"
	auditEmergencyCancel   = "emergency.cancel"
	auditEmergencyAllClear = "emergency.all_clear"
)

// emergencyMessage is what an alert or its all-clear plays: the whole of
// an all-clear's request, and part of an alert's.
type emergencyMessage struct {
	ContentID string `json:"content_id"`
	// Text is read out by text-to-speech instead of stored content.
	Text string `json:"text"`
	// IntroContentID names stored content (a warning kept on the
	// clusters) played after the opening chime, before the message.
	IntroContentID string  `json:"intro_content_id"`
	Voice          string  `json:"voice"`
	Rate           float64 `json:"rate"`
	Title          string  `json:"title"`
	// Repeat and Volume are nil when left out: the service's 0 means its
	// default, and a 0 the caller wrote must not become full volume.
	Repeat *int `json:"repeat"`
	Volume *int `json:"volume"`
}

// levels returns repeat and volume for the service (0: its default),
// refusing a value out of range, 0 included, before anything is read
// out or sent; defaultRepeat is what the answer names as the default.
func (m *emergencyMessage) levels(defaultRepeat int) (repeat, volume int, err error) {
	if m.Repeat != nil {
		if repeat = *m.Repeat; repeat < 1 || repeat > protocol.MaxRepeat {
			return 0, 0, loaxa.Errorf(loaxa.EInvalid, "repeat %d: give 1 to %d (default %d).", repeat, protocol.MaxRepeat, defaultRepeat)
		}
	}
	if m.Volume != nil {
		if volume = *m.Volume; volume < 1 || volume > protocol.MaxVolume {
			return 0, 0, loaxa.Errorf(loaxa.EInvalid, "volume %d: give 1 to %d (%d, the default, is full volume; 3 is a quiet drill).", volume, protocol.MaxVolume, protocol.MaxVolume)
		}
	}
	return repeat, volume, nil
}

// emergencyRequest is the body of POST /api/v1/emergency.
type emergencyRequest struct {
	emergencyMessage
	// Targets is a list of area ids, or {"areas": [...]} as announcements
	// write it.
	Targets json.RawMessage `json:"targets"`
	Drill   bool            `json:"drill"`
	Expires string          `json:"expires"`
}

// allClearRequest is the body of POST /api/v1/emergency/{id}/all-clear:
// only the message, since the all-clear goes where its alert went.
type allClearRequest struct {
	emergencyMessage
}

// refuseField says why an all-clear does not take the alert's own fields.
func (allClearRequest) refuseField(name string) (string, bool) {
	switch name {
	case "targets", "drill", "expires":
		return fmt.Sprintf("An all-clear goes to the areas of the emergency it follows, as a drill if that was one; leave out %s and send only content_id or text, and optionally title, repeat and volume.", name), true
	}
	return "", false
}

// emergencyService returns the service or says that there is none.
func (s *Server) emergencyService() (loaxa.EmergencyService, error) {
	if s.EmergencyService == nil {
		return nil, loaxa.Errorf(loaxa.EUnavailable, "Emergency broadcasting is not set up on this controller.")
	}
	return s.EmergencyService, nil
}

// parseTargets reads the targets of an emergency request: area ids.
func parseTargets(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var areas []string
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &areas); err != nil {
			return nil, loaxa.Errorf(loaxa.EInvalid, "targets: give a list of area ids, e.g. [\"31\"].")
		}
	} else {
		var t loaxa.Targets
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, loaxa.Errorf(loaxa.EInvalid, "targets: give a list of area ids, e.g. [\"31\"], or {\"areas\": [\"31\"]}.")
		}
		if len(t.Nodes) > 0 {
			return nil, loaxa.Errorf(loaxa.EInvalid, "targets.nodes: an emergency goes to whole areas (one publish per area); name the areas.")
		}
		areas = t.Areas
	}
	if len(areas) > MaxTargets {
		return nil, loaxa.Errorf(loaxa.EInvalid, "targets: %d areas; name at most %d (a common ancestor covers them all).", len(areas), MaxTargets)
	}
	return areas, nil
}

// emergencyContent returns the content id of a request: content_id as
// given, or text read out by the speech engine and stored as content.
func (s *Server) emergencyContent(ctx context.Context, actor string, req *emergencyMessage) (contentID, text string, err error) {
	text = speechText(req.Text)
	switch {
	case req.ContentID != "" && text != "":
		return "", "", loaxa.Errorf(loaxa.EInvalid, "Give content_id or text, not both.")
	case req.ContentID != "":
		return req.ContentID, "", nil
	case text == "":
		return "", "", loaxa.Errorf(loaxa.EInvalid, "Give content_id (uploaded audio) or text (read out by text-to-speech).")
	case s.SpeechEngine == nil:
		return "", "", &loaxa.Error{Code: loaxa.EUnavailable, Reason: loaxa.ReasonSpeechUnavailable,
			Message: "Text-to-speech is not available on this controller, so the text cannot be read out; upload a recording with POST /api/v1/content and send its content_id."}
	}
	voice, rate := req.Voice, req.Rate
	if voice == "" {
		voice = s.SpeechEngine.Voices()[0]
	}
	if rate == 0 {
		rate = 1
	}
	c, err := s.speak(ctx, loaxa.SpeechRequest{Text: text, Voice: voice, Rate: rate})
	if err != nil {
		if loaxa.ErrorCode(err) == loaxa.EUnavailable {
			return "", "", &loaxa.Error{Code: loaxa.EUnavailable, Reason: loaxa.ErrorReason(err), Message: fmt.Sprintf(
				"Text-to-speech failed, so the text cannot be read out (%s); upload a recording and send its content_id.", loaxa.ErrorMessage(err))}
		}
		return "", "", fmt.Errorf("emergency: %w", err)
	}
	defer s.releaseAudio(ctx, c.ID)
	c.Title = speechTitle(text)
	c.CreatedBy = actor
	c.CreatedAt = s.now()
	stored, err := s.ContentService.CreateContent(ctx, c)
	if err != nil {
		return "", "", fmt.Errorf("emergency: store the speech: %w", err)
	}
	return stored.ID, text, nil
}

// handleSendEmergency answers POST /api/v1/emergency: the alert goes out
// at once to every node of the target areas; 201 with the emergency.
func (s *Server) handleSendEmergency(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	var req emergencyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	areas, err := parseTargets(req.Targets)
	if err != nil {
		return err
	}
	if len(areas) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "targets is empty: name the areas to alert, e.g. {\"targets\": [\"31\"]}.")
	}
	// Every target is checked before anything is made or sent.
	for _, a := range areas {
		if _, err := s.requireArea(ctx, "targets", a); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionEmergency, a); err != nil {
			return err
		}
	}
	var expires time.Time
	if req.Expires != "" {
		if expires, err = time.Parse(time.RFC3339Nano, req.Expires); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "expires %q: write an RFC 3339 time, e.g. %s.", req.Expires, s.now().In(exampleZone).Add(15*time.Minute).Format(time.RFC3339))
		}
	}
	title, err := cleanText("title", req.Title, false)
	if err != nil {
		return err
	}
	repeat, volume, err := req.levels(loaxa.DefaultEmergencyRepeat)
	if err != nil {
		return err
	}
	contentID, text, err := s.emergencyContent(ctx, userFrom(ctx).Username, &req.emergencyMessage)
	if err != nil {
		return err
	}
	em, err := svc.SendEmergency(ctx, loaxa.EmergencyRequest{
		Kind: loaxa.EmergencyAlert, Title: title, ContentID: contentID, Text: text, IntroContentID: req.IntroContentID, Targets: areas,
		Repeat: repeat, Volume: volume, Drill: req.Drill, Expires: expires, CreatedBy: userFrom(ctx).Username,
	})
	if em != nil {
		s.auditIn(r, auditEmergencySend, em.ID, em.Targets, emergencyDetail(em))
	}
	return s.answerSent(w, r, em, err)
}

// answerSent answers the sending of an emergency or all-clear: 201 with
// it, or the error. An emergency stored but not published (the broker
// away) is answered with the error and the emergency itself, so that the
// console opens its board, where the clusters it reaches as it is sent
// again show, rather than inviting a second send of the same alert.
func (s *Server) answerSent(w http.ResponseWriter, r *http.Request, em *loaxa.Emergency, err error) error {
	switch {
	case err == nil:
		s.writeJSON(w, r, http.StatusCreated, em)
		return nil
	case em == nil:
		return err
	}
	code := loaxa.ErrorCode(err)
	status := errorStatus(code)
	if status == http.StatusInternalServerError {
		return err
	}
	s.writeJSON(w, r, status, struct {
		errorResponse
		Emergency *loaxa.Emergency `json:"emergency"`
	}{errorResponse{Error: errorBody{Code: code, Message: loaxa.ErrorMessage(err)}}, em})
	return nil
}

func emergencyDetail(em *loaxa.Emergency) string {
	return fmt.Sprintf("drill=%t kind=%s content=%s repeat=%d volume=%d title=%q", em.Drill, em.Kind, em.ContentID, em.Repeat, em.Volume, em.Title)
}

// findEmergency returns emergency id if the caller may see it: their area
// lies within one of its targets, or one of its targets within their area.
func (s *Server) findEmergency(ctx context.Context, svc loaxa.EmergencyService, id string) (*loaxa.EmergencyReport, error) {
	rep, err := svc.EmergencyReport(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, err := s.seesEmergency(ctx, rep.Emergency); err != nil {
		return nil, err
	} else if !ok {
		return nil, &loaxa.Error{Code: loaxa.EForbidden, Reason: loaxa.ReasonOutsideArea, Message: fmt.Sprintf("Emergency %s went to areas outside your area.", id)}
	}
	return rep, nil
}

func (s *Server) seesEmergency(ctx context.Context, em *loaxa.Emergency) (bool, error) {
	u := userFrom(ctx)
	if u == nil || u.Area == "" {
		return u != nil, nil
	}
	mine, err := s.AreaService.AreaChain(ctx, u.Area)
	if err != nil {
		return false, fmt.Errorf("area of %s: %w", u.Username, err)
	}
	for _, t := range em.Targets {
		if slices.Contains(mine, t) {
			return true, nil // sent above the user's area: it reached them
		}
		chain, err := s.AreaService.AreaChain(ctx, t)
		if err != nil {
			continue // an area removed since
		}
		if u.Covers(chain) {
			return true, nil
		}
	}
	return false, nil
}

// handleListEmergencies answers GET /api/v1/emergency?limit=: the
// emergencies the caller may see, newest first.
func (s *Server) handleListEmergencies(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "limit"); err != nil {
		return err
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 10000 {
			return loaxa.Errorf(loaxa.EInvalid, "limit %q: give a number from 1 to 10000.", v)
		}
	}
	ctx := r.Context()
	ems, err := svc.FindEmergencies(ctx, 0)
	if err != nil {
		return err
	}
	out := []*loaxa.Emergency{}
	for _, em := range ems {
		if len(out) == limit {
			break
		}
		if ok, err := s.seesEmergency(ctx, em); err != nil {
			return err
		} else if ok {
			out = append(out, em)
		}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"emergencies": out})
	return nil
}

// handleGetEmergency answers GET /api/v1/emergency/{id}: the emergency,
// the summary (targeted, reached, sounding, completed, failed, cancelled,
// offline, pending) and every node's state.
func (s *Server) handleGetEmergency(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	rep, err := s.findEmergency(r.Context(), svc, r.PathValue("id"))
	if err != nil {
		return err
	}
	if rep.AreaNames, err = s.nodeAreaNames(r.Context(), rep); err != nil {
		return err
	}
	rep.Resume = s.resume.remember(rep)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, rep)
	return nil
}

// nodeAreaNames names the areas of rep's nodes, from the subtrees of its
// targets.
func (s *Server) nodeAreaNames(ctx context.Context, rep *loaxa.EmergencyReport) (map[string]string, error) {
	want := map[string]bool{}
	for _, n := range rep.Nodes {
		want[n.Area] = true
	}
	names := make(map[string]string, len(want))
	for _, t := range rep.Targets {
		areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: t})
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			continue // an area removed since
		} else if err != nil {
			return nil, fmt.Errorf("emergency %s: areas of %s: %w", rep.ID, t, err)
		}
		for _, a := range areas {
			if want[a.ID] {
				names[a.ID] = a.Name
			}
		}
	}
	return names, nil
}

// emergencyToAct returns emergency id for a caller who may act on it:
// send emergencies to every one of its targets (cancel, all-clear).
func (s *Server) emergencyToAct(ctx context.Context, svc loaxa.EmergencyService, id string) (*loaxa.EmergencyReport, error) {
	rep, err := s.findEmergency(ctx, svc, id)
	if err != nil {
		return nil, err
	}
	for _, t := range rep.Targets {
		if err := s.authorizeOn(ctx, loaxa.ActionEmergency, t, fmt.Sprintf("Part of emergency %s", rep.ID)); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// handleCancelEmergency answers POST /api/v1/emergency/{id}/cancel: stops
// it on every node; what it cut off plays again by its own policy.
func (s *Server) handleCancelEmergency(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	rep, err := s.emergencyToAct(ctx, svc, r.PathValue("id"))
	if err != nil {
		return err
	}
	em, err := svc.CancelEmergency(ctx, rep.ID, userFrom(ctx).Username)
	if em != nil {
		s.auditIn(r, auditEmergencyCancel, em.ID, em.Targets, fmt.Sprintf("drill=%t", em.Drill))
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, em)
	return nil
}

// handleAllClear answers POST /api/v1/emergency/{id}/all-clear: the
// follow-up that the danger has passed, to the same areas (a drill's
// all-clear is a drill too). The emergency it follows is cancelled first
// if it still plays, once the all-clear's request is found good
// (SendEmergency).
func (s *Server) handleAllClear(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	var req allClearRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	rep, err := s.emergencyToAct(ctx, svc, r.PathValue("id"))
	if err != nil {
		return err
	}
	if rep.Kind != loaxa.EmergencyAlert {
		return loaxa.Errorf(loaxa.EConflict, "%s is an all-clear itself; send the all-clear for the alert it follows (%s).", rep.ID, rep.Follows)
	}
	if rep.AllClear != "" {
		return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonAllClearSent, Message: fmt.Sprintf("The all-clear for %s was sent already: %s.", rep.ID, rep.AllClear)}
	}
	title, err := cleanText("title", req.Title, false)
	if err != nil {
		return err
	}
	repeat, volume, err := req.levels(1)
	if err != nil {
		return err
	}
	contentID, text, err := s.emergencyContent(ctx, userFrom(ctx).Username, &req.emergencyMessage)
	if err != nil {
		return err
	}
	by := userFrom(ctx).Username
	em, err := svc.SendEmergency(ctx, loaxa.EmergencyRequest{
		Kind: loaxa.EmergencyAllClear, Follows: rep.ID, Title: title, ContentID: contentID, Text: text, IntroContentID: req.IntroContentID,
		Repeat: repeat, Volume: volume, CreatedBy: by,
	})
	switch loaxa.ErrorCode(err) {
	case loaxa.EInvalid, loaxa.EConflict, loaxa.ENotFound:
		// Refused before anything was stopped.
	default:
		if rep.State == loaxa.EmergencyActive {
			s.auditIn(r, auditEmergencyCancel, rep.ID, rep.Targets, fmt.Sprintf("drill=%t by all-clear", rep.Drill))
		}
	}
	if em != nil {
		s.auditIn(r, auditEmergencyAllClear, em.ID, em.Targets, "follows="+rep.ID+" "+emergencyDetail(em))
	}
	return s.answerSent(w, r, em, err)
}

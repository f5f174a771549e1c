package http

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/unicode/norm"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Upstream is the link to the provincial information-source system
// (controller/upstream): the export on demand and the pusher's state.
type Upstream interface {
	Export(ctx context.Context, area string, from, to, now time.Time) (any, error)
	// Status is the push outbox's state, or an EConflict error when no
	// endpoint is configured.
	Status(ctx context.Context) (any, error)
}

// handleUpstreamExport answers GET /api/v1/upstream/export?area=&from=&to=:
// the export document (docs/upstream.md) of an area over a period (default
// the last 24 hours), as the scheduled push sends it.
func (s *Server) handleUpstreamExport(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area", "from", "to"); err != nil {
		return err
	}
	if s.Upstream == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller has no upstream export.")
	}
	ctx, q := r.Context(), r.URL.Query()
	area := q.Get("area")
	if area == "" {
		area = userFrom(ctx).Area
	}
	if area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
	}
	from, err := parseRangeTime("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := parseRangeTime("to", q.Get("to"))
	if err != nil {
		return err
	}
	now := s.now()
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) || to.Sub(from) > MaxReportSpan {
		return reportRangeError(from, to, q.Get("to") == "")
	}
	x, err := s.Upstream.Export(ctx, area, from, to, now)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, x)
	return nil
}

// handleUpstreamOutbox answers GET /api/v1/upstream/outbox.
func (s *Server) handleUpstreamOutbox(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if s.Upstream == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller has no upstream export.")
	}
	st, err := s.Upstream.Status(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, st)
	return nil
}

// systemRequest is the body of POST /api/v1/upstream/systems.
type systemRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Area string `json:"area"`
}

// createdSystem answers POST /api/v1/upstream/systems: the key is shown
// this once.
type createdSystem struct {
	*loaxa.UpstreamSystem
	Key string `json:"key"`
}

// handleCreateSystem answers POST /api/v1/upstream/systems: registers the
// province's system, whose bulletins may then target Area's subtree.
func (s *Server) handleCreateSystem(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.UpstreamSystems == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller takes no inbound bulletins.")
	}
	var req systemRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := protocol.CheckID(req.ID); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "id %q: %v.", req.ID, err)
	}
	name, err := cleanText("name", req.Name, true)
	if err != nil {
		return err
	}
	if _, err := s.requireArea(ctx, "area", req.Area); err != nil {
		return err
	}
	secret := loaxa.NewSecret()
	sys := &loaxa.UpstreamSystem{ID: req.ID, Name: name, Area: req.Area, KeyHash: loaxa.HashSecret(secret), CreatedBy: userFrom(ctx).Username}
	if err := s.UpstreamSystems.CreateUpstreamSystem(ctx, sys); err != nil {
		return err
	}
	s.audit(r, "upstream.system.create", sys.ID, sys.Area, "")
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, createdSystem{UpstreamSystem: sys, Key: sys.ID + "." + secret})
	return nil
}

// handleListSystems answers GET /api/v1/upstream/systems.
func (s *Server) handleListSystems(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if s.UpstreamSystems == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller takes no inbound bulletins.")
	}
	systems, err := s.UpstreamSystems.FindUpstreamSystems(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"systems": nonNil(systems)})
	return nil
}

// inboundRequest is the body of POST /api/v1/inbound/bulletins.
type inboundRequest struct {
	// ID is the sender's id of the bulletin: a bulletin sent again with
	// the same id is not scheduled twice.
	ID       string            `json:"id"`
	Title    string            `json:"title"`
	Priority protocol.Priority `json:"priority"`
	Areas    []string          `json:"areas"`
	// Text is read out by text-to-speech; or Audio is a WAV or MP3 file,
	// base64.
	Text  string `json:"text"`
	Audio string `json:"audio"`
}

// MaxInboundAudio bounds an inbound bulletin's audio (decoded).
const MaxInboundAudio = 20 << 20

// inboundResponse answers POST /api/v1/inbound/bulletins.
type inboundResponse struct {
	Announcement string `json:"announcement,omitempty"`
	// Emergency is the emergency sent for an emergency bulletin (GET
	// /api/v1/emergency/{id} follows it).
	Emergency string            `json:"emergency,omitempty"`
	Priority  protocol.Priority `json:"priority"`
	// Handling says what happens: "proposal" (stations accept it into a
	// session), "next-session" (opens the next session), "as-sent" (no
	// station below: plays at once), "immediate" (an emergency: sent at
	// once through the emergency path).
	Handling  string   `json:"handling"`
	Proposals []string `json:"proposals,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
}

// handleInboundBulletin answers POST /api/v1/inbound/bulletins from the
// province's information-source system, authenticated by its key
// ("Authorization: Bearer <system>.<secret>"). National priority levels:
// normal becomes a proposal to the stations below (as a district's
// bulletin does), priority opens the next session, emergency goes out at
// once as an emergency alert.
func (s *Server) handleInboundBulletin(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if s.UpstreamSystems == nil {
		return loaxa.Errorf(loaxa.EConflict, "This controller takes no inbound bulletins.")
	}
	sys, err := s.authenticateSystem(r)
	if err != nil {
		return err
	}
	var req inboundRequest
	// Audio comes base64 in the JSON: a third larger than the file.
	limit := int64(MaxInboundAudio*4/3 + MaxJSONBytes)
	if r.ContentLength > limit {
		return loaxa.Errorf(loaxa.ETooLarge, "The bulletin is %d bytes; send at most %d (audio of up to %d bytes, base64).", r.ContentLength, limit, MaxInboundAudio)
	}
	if err := decodeJSONMax(w, r, &req, limit); err != nil {
		return err
	}
	if req.ID == "" || len(req.ID) > 128 {
		return loaxa.Errorf(loaxa.EInvalid, "id is required (your system's id of the bulletin, at most 128 characters), so that a resend is not scheduled twice.")
	}
	// A client that timed out resends while the first request is still
	// read and sent: the resend waits for it, then finds its id.
	unlock, err := s.inbound.lock(ctx, sys.ID+"\x00"+req.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if made, err := s.UpstreamSystems.InboundAnnouncement(ctx, sys.ID, req.ID); err != nil {
		return err
	} else if made != "" {
		resp, err := s.inboundDuplicate(ctx, sys, &req, made)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, resp)
		return nil
	}
	// In NFC, as every content title is (contentTitle).
	title, err := cleanText("title", norm.NFC.String(req.Title), true)
	if err != nil {
		return err
	}
	var handling string
	switch req.Priority {
	case protocol.PriorityNormal:
		handling = "proposal"
	case protocol.PriorityHigh:
		handling = "next-session"
	case protocol.PriorityEmergency:
		handling = "immediate"
	default:
		return loaxa.Errorf(loaxa.EInvalid, "priority %q: give normal (thông thường), priority (ưu tiên) or emergency (khẩn cấp).", req.Priority)
	}
	if len(req.Areas) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "areas: name at least one area the bulletin is for.")
	}
	for _, id := range req.Areas {
		if _, err := s.requireArea(ctx, "areas", id); err != nil {
			return err
		}
		chain, err := s.AreaService.AreaChain(ctx, id)
		if err != nil {
			return err
		}
		if !containsString(chain, sys.Area) {
			return loaxa.Errorf(loaxa.EForbidden, "Area %s is outside %s, the area of system %s.", id, sys.Area, sys.ID)
		}
	}
	c, err := s.inboundContent(ctx, sys, &req, title)
	if err != nil {
		return err
	}
	if req.Priority == protocol.PriorityEmergency {
		return s.inboundEmergency(w, r, sys, &req, title, c)
	}
	a := &loaxa.Announcement{
		Title: title, ContentID: c.ID, Targets: loaxa.Targets{Areas: req.Areas, Nodes: []string{}},
		Priority: req.Priority, Start: s.now().Add(5 * time.Second), Repeat: 1, State: loaxa.AnnouncementActive,
		FromArea: sys.Area, CreatedBy: "system:" + sys.ID, CreatedAt: s.now(),
	}
	stations, err := s.stationsUnder(ctx, a.Targets.Areas, sys.Area)
	if err != nil {
		return err
	}
	if len(stations) == 0 {
		// No session below to propose it to or to open: every node
		// plays it as sent.
		handling = "as-sent"
	}
	if req.Priority == protocol.PriorityNormal {
		a.Proposed = len(stations) > 0
	} else {
		stations = nil // it opens their next sessions; nothing to accept
	}
	if err := s.AnnouncementService.CreateAnnouncement(ctx, a); err != nil {
		return fmt.Errorf("inbound bulletin: %w", err)
	}
	resp := inboundResponse{Announcement: a.ID, Priority: a.Priority, Handling: handling}
	if len(stations) > 0 {
		var ps []*loaxa.Proposal
		for _, st := range stations {
			ps = append(ps, &loaxa.Proposal{Announcement: a.ID, Area: st})
		}
		if err := s.ProposalService.CreateProposals(ctx, ps); err != nil {
			return fmt.Errorf("inbound bulletin %s: %w", a.ID, err)
		}
		for _, p := range ps {
			resp.Proposals = append(resp.Proposals, p.ID)
		}
	}
	if err := s.UpstreamSystems.SetInboundAnnouncement(ctx, sys.ID, req.ID, a.ID); err != nil {
		return err
	}
	s.changed()
	s.auditAs(r, "system:"+sys.ID, "inbound.bulletin", a.ID, sys.Area, fmt.Sprintf("id=%s priority=%s handling=%s", req.ID, a.Priority, handling))
	s.writeJSON(w, r, http.StatusCreated, resp)
	return nil
}

// inboundDuplicate answers a bulletin whose id the system sent before and
// which made made (an announcement or an emergency): with what the first
// one became, or, when this one asks for another priority, a refusal. A
// warning escalated to an emergency under the id of the normal bulletin
// it began as would otherwise be answered "duplicate" naming that
// bulletin as if it were the alert, and nothing would sound.
func (s *Server) inboundDuplicate(ctx context.Context, sys *loaxa.UpstreamSystem, req *inboundRequest, made string) (inboundResponse, error) {
	resp := inboundResponse{Duplicate: true}
	if strings.HasPrefix(made, loaxa.EmergencyIDPrefix) {
		resp.Emergency, resp.Priority, resp.Handling = made, protocol.PriorityEmergency, "immediate"
	} else {
		a, err := s.AnnouncementService.FindAnnouncementByID(ctx, made)
		if err != nil {
			return resp, fmt.Errorf("inbound bulletin %s made %s: %w", req.ID, made, err)
		}
		resp.Announcement, resp.Priority = a.ID, a.Priority
		switch {
		case a.Proposed:
			resp.Handling = "proposal"
		case a.Priority == protocol.PriorityHigh:
			stations, err := s.stationsUnder(ctx, a.Targets.Areas, sys.Area)
			if err != nil {
				return resp, err
			}
			resp.Handling = "next-session"
			if len(stations) == 0 {
				resp.Handling = "as-sent"
			}
		default:
			resp.Handling = "as-sent"
		}
	}
	if req.Priority != resp.Priority {
		return resp, loaxa.Errorf(loaxa.EConflict, "Bulletin id %s was already taken as a %s bulletin (%s); this one asks for %s. Nothing was sent: send it again with a new id.",
			req.ID, resp.Priority, made, req.Priority)
	}
	return resp, nil
}

// inboundEmergency sends an emergency bulletin through the emergency path
// (POST /api/v1/emergency's): at once, over whatever plays, at full volume.
func (s *Server) inboundEmergency(w http.ResponseWriter, r *http.Request, sys *loaxa.UpstreamSystem, req *inboundRequest, title string, c *loaxa.Content) error {
	ctx := r.Context()
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	em, err := svc.SendEmergency(ctx, loaxa.EmergencyRequest{
		Kind: loaxa.EmergencyAlert, Title: title, ContentID: c.ID, Targets: req.Areas, CreatedBy: "system:" + sys.ID,
	})
	if em != nil {
		e := &loaxa.AuditEntry{Actor: "system:" + sys.ID, Action: auditEmergencySend, Target: em.ID, Detail: emergencyDetail(em) + " inbound=" + req.ID}
		s.fileUnder(r.Context(), e, em.Targets)
		s.recordAs(r, e)
		// An alert stored but not yet published (the broker away: 503)
		// is sent by the emergency service once it can be; the system's
		// resend of the 503 finds it rather than sending a second one.
		if err := s.UpstreamSystems.SetInboundAnnouncement(context.WithoutCancel(ctx), sys.ID, req.ID, em.ID); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusCreated, inboundResponse{Emergency: em.ID, Priority: protocol.PriorityEmergency, Handling: "immediate"})
	return nil
}

// authenticateSystem checks "Authorization: Bearer <system>.<secret>".
func (s *Server) authenticateSystem(r *http.Request) (*loaxa.UpstreamSystem, error) {
	bad := loaxa.Errorf(loaxa.EUnauthorized, "Send the system's key as \"Authorization: Bearer <key>\", the key shown when the system was registered (POST /api/v1/upstream/systems).")
	token, ok := bearerToken(r)
	if !ok {
		return nil, bad
	}
	id, secret, ok := strings.Cut(token, ".")
	if !ok {
		return nil, bad
	}
	sys, err := s.UpstreamSystems.FindUpstreamSystemByID(r.Context(), id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, bad
	} else if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(loaxa.HashSecret(secret), sys.KeyHash) != 1 {
		return nil, bad
	}
	return sys, nil
}

// inboundContent stores the bulletin's audio: spoken text or the file.
func (s *Server) inboundContent(ctx context.Context, sys *loaxa.UpstreamSystem, req *inboundRequest, title string) (*loaxa.Content, error) {
	var c *loaxa.Content
	switch {
	case (req.Text == "") == (req.Audio == ""):
		return nil, loaxa.Errorf(loaxa.EInvalid, "Give the bulletin as text (read out by text-to-speech) or as audio (a WAV or MP3 file, base64), one of the two.")
	case req.Audio != "":
		raw, err := base64.StdEncoding.DecodeString(req.Audio)
		if err != nil || len(raw) > MaxInboundAudio {
			return nil, loaxa.Errorf(loaxa.EInvalid, "audio: want a WAV or MP3 file of at most %d bytes, base64 (standard alphabet).", MaxInboundAudio)
		}
		if c, err = s.MediaService.Ingest(ctx, bytes.NewReader(raw), loaxa.IngestOptions{}); err != nil {
			return nil, err
		}
	default:
		if s.SpeechEngine == nil {
			return nil, &loaxa.Error{Code: loaxa.EUnavailable, Reason: loaxa.ReasonSpeechUnavailable,
				Message: "Text-to-speech is not set up on this controller; send the bulletin as audio."}
		}
		var err error
		speech := loaxa.SpeechRequest{Text: speechText(req.Text), Voice: s.SpeechEngine.Voices()[0], Rate: 1}
		if c, err = s.speak(ctx, speech); err != nil {
			return nil, fmt.Errorf("inbound bulletin: %w", err)
		}
	}
	defer s.releaseAudio(ctx, c.ID)
	if existing, err := s.ContentService.FindContentByID(ctx, c.ID); err == nil {
		return existing, nil
	}
	c.Title, c.CreatedBy, c.CreatedAt = title, "system:"+sys.ID, s.now()
	stored, err := s.ContentService.CreateContent(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("inbound bulletin: save content: %w", err)
	}
	return stored, nil
}

// stationsUnder returns the areas with sessions (stations) within
// targets, other than from.
func (s *Server) stationsUnder(ctx context.Context, targets []string, from string) ([]string, error) {
	if s.SessionService == nil || s.ProposalService == nil {
		return nil, nil
	}
	var out []string
	for _, target := range targets {
		areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: target})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		ids := make([]string, 0, len(areas))
		for _, ar := range areas {
			if ar.ID != from {
				ids = append(ids, ar.ID)
			}
		}
		sessions, err := s.SessionService.FindSessions(ctx, loaxa.SessionFilter{Areas: ids})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		for _, x := range sessions {
			if !containsString(out, x.Area) {
				out = append(out, x.Area)
			}
		}
	}
	return out, nil
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// keyLocks holds keys one request at a time; the zero value is ready.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when the key is let go
}

// lock waits until no other request holds key, or ctx ends, and holds it
// until unlock is called.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		k.mu.Lock()
		busy, ok := k.held[key]
		if !ok {
			if k.held == nil {
				k.held = make(map[string]chan struct{})
			}
			done := make(chan struct{})
			k.held[key] = done
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(done)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the same bulletin sent before: %w", ctx.Err())
		}
	}
}

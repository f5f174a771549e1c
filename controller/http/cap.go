package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/cap"
	"loaxa.vn/controller/loaxa"
)

// Audit actions of CAP alerts.
const (
	auditCapReceive    = "cap.receive"
	auditCapApprove    = "cap.approve"
	auditCapAutoStart  = "cap.auto_start"
	auditCapRecordings = "cap.recordings"
)

// capResponse answers POST /api/v1/cap and its approval.
type capResponse struct {
	Action    string           `json:"action"`
	Reason    string           `json:"reason,omitempty"`
	Alert     *loaxa.CapAlert  `json:"alert"` // null for a duplicate the caller may not read
	Emergency *loaxa.Emergency `json:"emergency,omitempty"`
	// Cancelled lists the emergencies a Cancel or Update stopped.
	Cancelled []string `json:"cancelled,omitempty"`
}

func (s *Server) capStore() (loaxa.CapStore, loaxa.EmergencyService, error) {
	if s.CapStore == nil || s.EmergencyService == nil {
		return nil, nil, loaxa.Errorf(loaxa.EUnavailable, "CAP alerts are not set up on this controller.")
	}
	return s.CapStore, s.EmergencyService, nil
}

// handleReceiveCap answers POST /api/v1/cap: one CAP 1.2 alert (XML) is
// validated, de-duplicated by sender and identifier, and acted on by its
// status and msgType (cap.Decide): played as an emergency or a drill,
// held for approval, used to cancel earlier ones, or only recorded. 201
// with what was done; 200 for a duplicate.
func (s *Server) handleReceiveCap(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	store, svc, err := s.capStore()
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/xml" && mt != "text/xml" && mt != "application/cap+xml" {
			return loaxa.Errorf(loaxa.EUnsupported, "Send the CAP alert as XML (Content-Type application/xml or application/cap+xml), not %q.", ct)
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cap.MaxSize))
	if err != nil {
		return loaxa.Errorf(loaxa.ETooLarge, "The CAP alert is larger than %d bytes.", cap.MaxSize)
	}
	ctx := r.Context()
	sc, err := s.scopeOf(ctx, userFrom(ctx), false)
	if err != nil {
		return err
	}
	status, resp, err := s.receiveCap(ctx, store, svc, raw, userFrom(ctx).Username, r.RemoteAddr, func(area string) error {
		return s.authorize(ctx, loaxa.ActionEmergency, area)
	}, func(a *loaxa.CapAlert) bool { return sc.touches(a.Targets) })
	if err != nil {
		return err
	}
	s.writeJSON(w, r, status, resp)
	return nil
}

// ReceiveCapFeed acts on one CAP alert polled from a configured feed, as
// actor "cap-feed": with the authority of whoever configured the feed
// (the whole tree). Duplicates are answered as such and do nothing. An
// alert refused for what it is wraps cap.ErrRefused, so that the poller
// does not hand it again; any other error is passing, and the alert is
// handed again at the next poll (a duplicate by then if it was stored).
func (s *Server) ReceiveCapFeed(ctx context.Context, raw []byte, feed string) (action string, err error) {
	store, svc, err := s.capStore()
	if err != nil {
		return "", err
	}
	all := func(*loaxa.CapAlert) bool { return true }
	_, resp, err := s.receiveCap(ctx, store, svc, raw, CapFeedActor, feed, func(string) error { return nil }, all)
	switch loaxa.ErrorCode(err) {
	case loaxa.EInvalid, loaxa.ETooLarge, loaxa.EUnsupported, loaxa.EForbidden:
		return resp.Action, fmt.Errorf("%w: %w", cap.ErrRefused, err)
	}
	return resp.Action, err
}

// CapFeedActor names polled CAP feeds in audit entries and records.
const CapFeedActor = "cap-feed"

// receiveCap validates, de-duplicates and acts on one CAP alert for actor;
// check says whether the actor may alert an area, sees whether the actor
// may read an earlier record (findCap's rule).
func (s *Server) receiveCap(ctx context.Context, store loaxa.CapStore, svc loaxa.EmergencyService, raw []byte, actor, remote string,
	check func(area string) error, sees func(*loaxa.CapAlert) bool) (int, capResponse, error) {
	duplicate := func(old *loaxa.CapAlert) (int, capResponse, error) {
		if !sees(old) {
			// Saying it came before is no secret (the poster holds the
			// alert); its record, targets and outcome are, outside the
			// caller's area.
			return http.StatusOK, capResponse{Action: string(cap.ActionDuplicate), Reason: "received before; the record is for areas outside yours"}, nil
		}
		return http.StatusOK, capResponse{Action: string(cap.ActionDuplicate), Reason: "received before as " + old.ID, Alert: s.capShown(ctx, nil, old)}, nil
	}
	a, err := cap.Parse(strings.NewReader(string(raw)))
	if err != nil {
		if errors.Is(err, cap.ErrInvalid) {
			return 0, capResponse{}, loaxa.Errorf(loaxa.EInvalid, "%s", strings.TrimPrefix(err.Error(), cap.ErrInvalid.Error()+": ")+" (CAP 1.2).")
		}
		return 0, capResponse{}, err
	}
	if old, err := store.FindCapAlertByKey(ctx, a.Key()); err == nil {
		return duplicate(old)
	} else if loaxa.ErrorCode(err) != loaxa.ENotFound {
		return 0, capResponse{}, err
	}
	auto, err := store.CapAutoStart(ctx)
	if err != nil {
		return 0, capResponse{}, fmt.Errorf("cap: auto-start list: %w", err)
	}
	d := cap.Decide(a, s.now(), func(string) bool { return false }, func(event string) bool {
		for _, e := range auto {
			if strings.EqualFold(strings.TrimSpace(e), strings.TrimSpace(event)) {
				return true
			}
		}
		return false
	})
	rec := &loaxa.CapAlert{
		Key: a.Key(), Identifier: a.Identifier, Sender: a.Sender, Sent: a.SentAt(), Status: a.Status, MsgType: a.MsgType,
		References: a.Refs(), Action: string(d.Action), Reason: d.Reason, Expires: d.Expires,
		ReceivedAt: s.now(), ReceivedBy: actor, XML: string(raw),
	}
	if in := d.Info; in != nil {
		rec.Event, rec.Language, rec.Headline, rec.Text = in.Event, in.Language, strings.TrimSpace(in.Headline), in.Message()
	}
	resp := capResponse{Alert: rec}
	if d.Action == cap.ActionPlay || d.Action == cap.ActionDrill || d.Action == cap.ActionPending {
		if len(d.Blocks) > 0 {
			err = s.capBlocks(ctx, rec, d.Blocks)
		} else {
			rec.Targets, err = s.capTargets(ctx, d.Info)
		}
		if err != nil {
			return 0, capResponse{}, err
		}
		if len(rec.Targets) == 0 {
			rec.Action, rec.Reason = string(cap.ActionNoTarget), "no geocode names an area here and no node lies in its polygons or circles"
		}
		for _, t := range rec.Targets {
			if err := check(t); err != nil {
				return 0, capResponse{}, err
			}
		}
	}
	// An alert that comes after a Cancel or Update of it (a gateway that
	// retried out of order, a feed that lists the newest first) was
	// withdrawn before it came: recorded, never played. What it references
	// itself is still withdrawn below.
	switch cap.Action(rec.Action) {
	case cap.ActionPlay, cap.ActionDrill, cap.ActionPending:
		later, err := withdrawnBefore(ctx, store, a)
		if err != nil {
			return 0, capResponse{}, err
		}
		if later != nil {
			rec.Action = string(cap.ActionCancelled)
			rec.Reason = capNote(rec.Reason, fmt.Sprintf("withdrawn by %s %s (%s), received before it", later.MsgType, later.Key, later.ID))
			rec.Withdrawn = &loaxa.CapWithdrawal{By: later.ID, Key: later.Key, MsgType: later.MsgType, At: rec.ReceivedAt}
		}
	}
	// Cancel and Update withdraw what the references started: the poster
	// needs the right to stop it (emergency on every area it went to, as
	// for POST /emergency/{id}/cancel), all checked before anything is
	// withdrawn or recorded.
	// An Exercise withdraws only exercises, an Actual alert only actual
	// ones: a drill's Cancel must not stop a real warning (CAP 1.2: an
	// Exercise is for the exercise's participants only).
	olds, otherStatus, err := withdrawable(ctx, store, a.Status, a.MsgType, d.Cancel, check)
	if err != nil {
		return 0, capResponse{}, err
	}
	for _, key := range otherStatus {
		rec.Reason = capNote(rec.Reason, fmt.Sprintf("%s not withdrawn: its status is not %s", key, a.Status))
	}
	// An Update that waits for approval leaves the warnings it updates
	// sounding until it is approved: the area keeps the older warning
	// rather than none. What of them waits for approval too is withdrawn
	// now; it is superseded.
	keepPlaying := rec.Action == string(cap.ActionPending) && a.MsgType == "Update"
	// An Update that plays now stops the warnings it updates only once it
	// sounds, as an approved one does: never a moment of silence between,
	// and if it cannot be played (text-to-speech down) they sound on while
	// it waits for approval.
	playsNow := rec.Action == string(cap.ActionPlay) || rec.Action == string(cap.ActionDrill)
	var afterPlay []*loaxa.CapAlert
	// withdrawn are those withdrawn before rec is stored: their records
	// get rec's id once storing it made one.
	var withdrawn []string
	for _, old := range olds {
		sounding := old.Action != string(cap.ActionPending) && old.Emergency != ""
		if keepPlaying && sounding {
			rec.Reason = capNote(rec.Reason, fmt.Sprintf("emergency %s of %s plays on until this update is approved", old.Emergency, old.Key))
			continue
		}
		if playsNow && sounding {
			afterPlay = append(afterPlay, old)
			continue
		}
		ids, err := s.withdrawCap(ctx, store, svc, old, actor, remote, loaxa.CapWithdrawal{Key: a.Key(), MsgType: a.MsgType, At: s.now()})
		if err != nil {
			return 0, capResponse{}, err
		}
		resp.Cancelled = append(resp.Cancelled, ids...)
		withdrawn = append(withdrawn, old.ID)
	}
	if err := store.CreateCapAlert(ctx, rec); err != nil {
		if loaxa.ErrorCode(err) == loaxa.EConflict { // the same alert, posted twice at once
			if old, ferr := store.FindCapAlertByKey(ctx, a.Key()); ferr == nil {
				return duplicate(old)
			}
		}
		return 0, capResponse{}, err
	}
	for _, id := range withdrawn {
		// Even when the request is gone: they are withdrawn.
		if _, err := store.UpdateCapAlert(context.WithoutCancel(ctx), id, func(old *loaxa.CapAlert) error {
			if w := old.Withdrawn; w != nil && w.By == "" && w.Key == rec.Key {
				w.By = rec.ID
			}
			return nil
		}); err != nil {
			s.logger().Error("cap: withdrawing alert not noted on the one it withdrew", "cap", id, "by", rec.ID, "err", err)
		}
	}
	if rec.Action == string(cap.ActionPending) {
		// The approval route names the record, which storing it made.
		// Even when the request is gone: the alert is stored and waits.
		if up, err := store.UpdateCapAlert(context.WithoutCancel(ctx), rec.ID, func(a *loaxa.CapAlert) error {
			if a.Action == string(cap.ActionPending) { // not withdrawn meanwhile
				a.Reason = capNote(a.Reason, capApproveNote(a.ID))
			}
			return nil
		}); err != nil {
			s.logger().Error("cap: approval route not noted", "cap", rec.ID, "err", err)
		} else {
			rec = up
			resp.Alert = rec
		}
	}
	if playsNow {
		em, err := s.playCap(ctx, store, svc, rec, actor, remote)
		if err != nil && em == nil {
			// Nothing was sent: hold it for approval, so that it can be
			// played once the cause is fixed rather than being a duplicate.
			reason := "could not be played (" + loaxa.ErrorMessage(err) + "); approve it once that is fixed"
			for _, old := range afterPlay {
				reason += fmt.Sprintf("; emergency %s of %s plays on until this update is approved", old.Emergency, old.Key)
			}
			if rec.Reason != "" { // what of it does not play, and why
				reason += "; " + rec.Reason
			}
			reason = capNote(reason, capApproveNote(rec.ID))
			// Even when the request is gone (its context is what failed):
			// left as played, a duplicate would never play it.
			if _, uerr := store.UpdateCapAlert(context.WithoutCancel(ctx), rec.ID, func(a *loaxa.CapAlert) error {
				a.Action, a.Reason = string(cap.ActionPending), reason
				return nil
			}); uerr != nil {
				s.logger().Error("cap: alert left as played", "cap", rec.ID, "err", uerr)
			}
			return 0, capResponse{}, err
		}
		// Sent, or stored and sent once the broker is back (err is then
		// EUnavailable): the warnings it updates stop, their cancels
		// following it (as POST /cap/{id}/approve does).
		for _, old := range afterPlay {
			ids, werr := s.withdrawCap(ctx, store, svc, old, actor, remote, loaxa.CapWithdrawal{By: rec.ID, Key: rec.Key, MsgType: rec.MsgType, At: s.now()})
			if werr != nil && (err == nil || loaxa.ErrorCode(werr) != loaxa.EUnavailable) {
				return 0, capResponse{}, werr
			}
			resp.Cancelled = append(resp.Cancelled, ids...)
		}
		if err != nil {
			return 0, capResponse{}, err
		}
		resp.Emergency, rec = em, mustCap(store.FindCapAlertByID(ctx, rec.ID))
		resp.Alert = rec
	}
	resp.Action, resp.Reason = rec.Action, rec.Reason
	s.auditActor(ctx, actor, remote, auditCapReceive, rec.ID, rec.Targets, fmt.Sprintf("key=%s status=%s msgType=%s action=%s", rec.Key, rec.Status, rec.MsgType, rec.Action))
	s.logger().Warn("cap: alert received", "cap", rec.ID, "key", rec.Key, "status", rec.Status, "msg_type", rec.MsgType,
		"event", rec.Event, "action", rec.Action, "targets", rec.Targets, "emergency", rec.Emergency, "by", actor)
	return http.StatusCreated, resp, nil
}

// auditActor records an action by actor without a request at hand.
func (s *Server) auditActor(ctx context.Context, actor, remote, action, target string, areas []string, detail string) {
	if s.AuditService == nil {
		return
	}
	e := &loaxa.AuditEntry{At: s.now(), Actor: actor, Action: action, Target: target, Detail: detail, Remote: remote}
	s.fileUnder(ctx, e, areas)
	if err := s.AuditService.RecordAudit(ctx, e); err != nil {
		s.logger().Error("audit: record failed", "action", action, "target", target, "err", err)
	}
}

func mustCap(a *loaxa.CapAlert, err error) *loaxa.CapAlert {
	if err != nil {
		return nil
	}
	return a
}

// withdrawable returns the CAP alerts received here that refs name and an
// alert of status and msgType withdraws, having checked with check the
// right to stop each on every area it went to (as for
// POST /emergency/{id}/cancel), before anything is withdrawn; and the keys
// of those it does not withdraw because their status differs (an Exercise
// withdraws only exercises, an Actual alert only actual ones).
func withdrawable(ctx context.Context, store loaxa.CapStore, status, msgType string, refs []string,
	check func(area string) error) (olds []*loaxa.CapAlert, otherStatus []string, err error) {
	for _, key := range refs {
		old, err := store.FindCapAlertByKey(ctx, key)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			continue // never received here: nothing to withdraw
		} else if err != nil {
			return nil, nil, err
		}
		if old.Status != status {
			otherStatus = append(otherStatus, key)
			continue
		}
		for _, t := range old.Targets {
			// Which of its areas is not the poster's is not theirs to
			// learn: the record is for areas outside theirs (findCap).
			if err := check(t); loaxa.ErrorCode(err) == loaxa.EForbidden {
				return nil, nil, loaxa.Errorf(loaxa.EForbidden, "This %s references CAP alert %s, which went to areas outside your area; only a user who may alert all of them may withdraw it.",
					msgType, key)
			} else if err != nil {
				return nil, nil, fmt.Errorf("withdraw CAP alert %s: %w", key, err)
			}
		}
		olds = append(olds, old)
	}
	return olds, otherStatus, nil
}

// withdrawnBefore returns a Cancel or Update received before a that
// references it and withdraws it (of the same status: an Exercise
// withdraws only exercises, an Actual alert only actual ones), or nil.
func withdrawnBefore(ctx context.Context, store loaxa.CapStore, a *cap.Alert) (*loaxa.CapAlert, error) {
	laters, err := store.FindCapAlertsReferencing(ctx, a.Key())
	if err != nil {
		return nil, fmt.Errorf("cap: alerts referencing %s: %w", a.Key(), err)
	}
	for _, l := range laters {
		if (l.MsgType == "Cancel" || l.MsgType == "Update") && l.Status == a.Status {
			return l, nil
		}
	}
	return nil, nil
}

// withdrawCap cancels what old started: its emergencies (one per info
// block it plays) if it plays, or its approval if it waits, and notes w on
// its record (w.By is empty while the withdrawing alert is not stored
// yet). It returns the emergencies cancelled. Each emergency it stops is
// audited as emergency.cancel under that emergency's areas, as a cancel
// by hand is (the withdrawing alert may name no area of its own).
func (s *Server) withdrawCap(ctx context.Context, store loaxa.CapStore, svc loaxa.EmergencyService, old *loaxa.CapAlert, actor, remote string, w loaxa.CapWithdrawal) ([]string, error) {
	by := w.MsgType + " " + w.Key
	if old.Action == string(cap.ActionPending) {
		_, err := store.UpdateCapAlert(ctx, old.ID, func(a *loaxa.CapAlert) error {
			// The approval route no longer applies: it is not waiting.
			a.Action = string(cap.ActionCancelled)
			a.Reason = capNote(capWithoutApproveNote(a.Reason, a.ID), fmt.Sprintf("withdrawn by a later %s %s", w.MsgType, w.Key))
			a.Withdrawn = &w
			return nil
		})
		return nil, err
	}
	var ids []string
	for _, id := range append([]string{old.Emergency}, capBlockEmergencies(old)...) {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	var cancelled []string
	var away error
	for _, id := range ids {
		em, err := svc.CancelEmergency(ctx, id, actor)
		if err != nil && loaxa.ErrorCode(err) != loaxa.EConflict {
			if loaxa.ErrorCode(err) != loaxa.EUnavailable {
				return cancelled, err
			}
			// Cancelled in the store; the cancel follows the nodes once
			// the broker takes it.
			away = err
		}
		if em != nil && (err == nil || loaxa.ErrorCode(err) == loaxa.EUnavailable) {
			s.auditActor(ctx, actor, remote, auditEmergencyCancel, em.ID, em.Targets,
				fmt.Sprintf("drill=%t by CAP %s of %s (%s)", em.Drill, by, old.Key, old.ID))
		}
		cancelled = append(cancelled, id)
	}
	// The list says it no longer sounds, and why: its action still says
	// what was done with it on arrival. The first withdrawal stays (an
	// Update, then a Cancel that references the same alert).
	if _, err := store.UpdateCapAlert(ctx, old.ID, func(a *loaxa.CapAlert) error {
		if a.Withdrawn == nil && a.Action != string(cap.ActionCancelled) {
			a.Withdrawn = &w
			a.Reason = capNote(a.Reason, s.capSay(ctx, nil, a, capWithdrawnNote(a)))
		}
		return nil
	}); err != nil {
		return cancelled, err
	}
	return cancelled, away
}

// capApproveNote ends the reason of an alert waiting for approval: the
// route that approves it, with its id (known once it is stored).
func capApproveNote(id string) string {
	return "to approve it: POST /api/v1/cap/" + id + "/approve"
}

// capWithoutApproveNote returns reason without the approval route of
// alert id (capApproveNote): once the alert is approved or withdrawn, an
// officer reading it must not be told to approve it.
func capWithoutApproveNote(reason, id string) string {
	note := capApproveNote(id)
	if reason == note {
		return ""
	}
	return strings.Replace(reason, "; "+note, "", 1)
}

// capWithout returns reason without note, wherever capNote put it.
func capWithout(reason, note string) string {
	switch {
	case note == "":
		return reason
	case reason == note:
		return ""
	case strings.HasPrefix(reason, note+"; "):
		return strings.TrimPrefix(reason, note+"; ")
	}
	return strings.Replace(reason, "; "+note, "", 1)
}

// capTime says t in the time zone of a's first area (Asia/Ho_Chi_Minh
// unless the area says otherwise), as the officers reading it live it,
// not the controller's own zone (often UTC on a server). zones, if not
// nil, keeps each area's zone for the rest of a request: a list of 10,000
// alerts read its areas' chains from the store for each note of each.
func (s *Server) capTime(ctx context.Context, zones capZones, a *loaxa.CapAlert, t time.Time) string {
	if len(a.Targets) > 0 {
		area := a.Targets[0]
		loc, ok := zones[area]
		if !ok {
			loc, _ = s.locationOf(ctx, area) // nil, UTC kept, if it cannot be read
			if zones != nil {
				zones[area] = loc
			}
		}
		if loc != nil {
			t = t.In(loc)
		}
	}
	return t.Format(time.RFC3339)
}

// capZones are the time zones of the areas a request's CAP notes were
// said in (capTime): area → zone, nil for one that could not be read.
type capZones map[string]*time.Location

// capInstant is a note on a CAP alert's reason that states an instant
// (who approved it and when, what withdrew it and when), said in the time
// zone its first area had when it was made (capTime). It is one note
// whatever zone the area has since: found by its words and the instant it
// states (in), a stored note in the old zone is not said again in the
// new one beside it.
type capInstant struct {
	head string // the words before the instant; "" is no note
	at   time.Time
	tail string // the words after it
}

// capSay says n in the time zone of a's first area.
func (s *Server) capSay(ctx context.Context, zones capZones, a *loaxa.CapAlert, n capInstant) string {
	if n.head == "" {
		return ""
	}
	return n.head + s.capTime(ctx, zones, a, n.at) + n.tail
}

// in returns n as reason says it, in whatever time zone, or "".
func (n capInstant) in(reason string) string {
	if n.head == "" {
		return ""
	}
	at := n.at.Truncate(time.Second) // as RFC 3339 says it
	for from := 0; ; {
		i := strings.Index(reason[from:], n.head)
		if i < 0 {
			return ""
		}
		start := from + i
		rest := reason[start+len(n.head):]
		for _, size := range []int{len("2006-01-02T15:04:05Z"), len("2006-01-02T15:04:05+07:00")} {
			if len(rest) < size || !strings.HasPrefix(rest[size:], n.tail) {
				continue
			}
			if t, err := time.Parse(time.RFC3339, rest[:size]); err == nil && t.Equal(at) {
				return reason[start : start+len(n.head)+size+len(n.tail)]
			}
		}
		from = start + len(n.head)
	}
}

// capApprovedNote is what the reason of an approved alert adds: who
// approved it, and when. Before, the reason still read "to approve it:
// POST …" (then nothing), and only approved_by and approved_at said it
// had been.
func capApprovedNote(a *loaxa.CapAlert) capInstant {
	if a.ApprovedBy == "" {
		return capInstant{}
	}
	return capInstant{head: "approved by " + a.ApprovedBy + " at ", at: a.ApprovedAt}
}

// capWithdrawnNote is what the reason of an alert a later Cancel or
// Update withdrew after it had played (or was approved) adds: by which,
// and when its emergencies were stopped; of one that started none (it had
// expired, no area here), by which and when only. A pending one's says it
// when it becomes cancelled (withdrawCap).
func capWithdrawnNote(a *loaxa.CapAlert) capInstant {
	w := a.Withdrawn
	if w == nil || a.Action == string(cap.ActionCancelled) || a.Action == string(cap.ActionPending) {
		return capInstant{}
	}
	what := "withdrawn by a later Cancel"
	if w.MsgType == "Update" {
		what = "replaced by a later Update"
	} else if w.MsgType != "Cancel" {
		what = "withdrawn by a later " + w.MsgType
	}
	note := capInstant{head: what + " " + w.Key + " at ", at: w.At}
	if a.Emergency == "" && !slices.ContainsFunc(capBlockEmergencies(a), func(id string) bool { return id != "" }) {
		return note // it never sounded (expired, no area here, recorded)
	}
	note.tail = ": it no longer sounds"
	return note
}

// capNote returns reason with note after what it says: a record's reason
// keeps every note made on it (why it waits, the blocks left out), and
// what happens to it later follows.
func capNote(reason, note string) string {
	if reason == "" {
		return note
	}
	return reason + "; " + note
}

// capBlockEmergencies returns the emergencies of a's info blocks.
func capBlockEmergencies(a *loaxa.CapAlert) []string {
	var out []string
	for _, b := range a.Blocks {
		out = append(out, b.Emergency)
	}
	return out
}

// capBlocks fills rec from the info blocks it plays, each to its own
// areas. CAP 1.2: where the blocks of a language overlap, a later one may
// expand an earlier one, never override it; so an earlier block keeps the
// areas it names. A later block's area that an earlier block covers
// (itself or an area it lies in) is left out: the clusters of a commune
// inside an earlier block's district hear that block only. A later
// block's area that holds an earlier block's goes to the rest of it
// (capAround): a district block after a commune's plays to the district's
// other communes, not to that commune again. A block left with no area
// here is not played; if only one is left, the alert plays it alone.
// rec's reason notes each block left out or cut down, and why.
func (s *Server) capBlocks(ctx context.Context, rec *loaxa.CapAlert, infos []*cap.Info) error {
	var blocks []loaxa.CapBlock
	var all []string
	note := func(n string) { rec.Reason = capNote(rec.Reason, n) }
	for _, in := range infos {
		headline, label := strings.TrimSpace(in.Headline), in.Label()
		targets, err := s.capTargets(ctx, in)
		if err != nil {
			return err
		}
		var own, covered []string // covered: "area" or "area within earlier area"
		for _, t := range targets {
			chain, err := s.AreaService.AreaChain(ctx, t)
			if err != nil {
				return fmt.Errorf("cap: %s: area %s: %w", label, t, err)
			}
			switch j := slices.IndexFunc(chain, func(a string) bool { return slices.Contains(all, a) }); {
			case j == 0:
				covered = append(covered, t)
				continue
			case j > 0:
				covered = append(covered, t+" within "+chain[j])
				continue
			}
			parts, inside, whole, err := s.capAround(ctx, t, all)
			if err != nil {
				return fmt.Errorf("cap: %s: area %s: %w", label, t, err)
			}
			switch {
			case whole:
				note(fmt.Sprintf("%s plays to all of %s: it has clusters of its own, and an emergency goes to whole areas, so %s, which an earlier block has, hears both",
					label, t, strings.Join(inside, ", ")))
				s.logger().Warn("cap: a later info block plays over an earlier one's area", "key", rec.Key, "block", in.Position(), "headline", headline, "area", t, "inside", inside)
			case len(inside) > 0 && len(parts) == 0:
				covered = append(covered, "all of "+t+" ("+strings.Join(inside, ", ")+")")
			case len(inside) > 0:
				note(fmt.Sprintf("%s plays to %s around %s, which an earlier block has: to %s",
					label, t, strings.Join(inside, ", "), strings.Join(parts, ", ")))
			}
			own = append(own, parts...)
		}
		targets = own
		switch {
		case len(targets) == 0 && len(covered) > 0:
			note(fmt.Sprintf("%s not played: an earlier block covers its areas (%s)", label, strings.Join(covered, ", ")))
			s.logger().Info("cap: an info block not played, an earlier one covers its areas", "key", rec.Key,
				"block", in.Position(), "headline", headline, "covered", covered)
			continue
		case len(targets) == 0:
			note(fmt.Sprintf("%s not played: no geocode names an area here and no node lies in its polygons or circles", label))
			continue
		case len(covered) > 0:
			note(fmt.Sprintf("%s plays to %s only: an earlier block has %s", label, strings.Join(targets, ", "), strings.Join(covered, ", ")))
		}
		slices.Sort(targets)
		all = append(all, targets...)
		blocks = append(blocks, loaxa.CapBlock{Position: in.Position(), Event: in.Event, Headline: headline, Text: in.Message(),
			Targets: targets, Expires: in.ExpiresAt()})
	}
	slices.Sort(all)
	rec.Targets = all
	if len(blocks) == 0 {
		return nil
	}
	b := blocks[0]
	rec.Event, rec.Headline, rec.Text, rec.Expires = b.Event, b.Headline, b.Text, b.Expires
	if len(blocks) > 1 {
		rec.Blocks = blocks
	}
	return nil
}

// capAround returns the parts of area t that the earlier blocks' areas
// (earlier) leave to a later block: t itself if none of them lies inside
// it; otherwise the areas below t that hold none of them, found going down
// towards those that do, with inside the earlier areas within t. An area
// on the way down that has clusters of its own cannot be split from those
// below it (an emergency goes to whole areas, one publish each): then
// whole, and t is the one part, so that none of its clusters misses the
// later block's warning.
func (s *Server) capAround(ctx context.Context, t string, earlier []string) (parts, inside []string, whole bool, err error) {
	if len(earlier) == 0 {
		return []string{t}, nil, false, nil
	}
	areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: t})
	if err != nil {
		return nil, nil, false, err
	}
	parent := map[string]string{}
	children := map[string][]string{}
	for _, a := range areas {
		if a.ID != t {
			parent[a.ID] = a.Parent
			children[a.Parent] = append(children[a.Parent], a.ID)
		}
	}
	// split: the areas from t down to an earlier one, which lose a part.
	split := map[string]bool{}
	for _, e := range earlier {
		if _, ok := parent[e]; !ok {
			continue
		}
		inside = append(inside, e)
		for a := parent[e]; a != "" && !split[a]; a = parent[a] {
			split[a] = true
		}
	}
	if len(inside) == 0 {
		return []string{t}, nil, false, nil
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: t})
	if err != nil {
		return nil, nil, false, fmt.Errorf("nodes: %w", err)
	}
	if slices.ContainsFunc(nodes, func(n *loaxa.Node) bool { return split[n.Area] }) {
		return []string{t}, inside, true, nil
	}
	var walk func(a string)
	walk = func(a string) {
		for _, c := range children[a] {
			switch {
			case split[c]:
				walk(c)
			case !slices.Contains(inside, c):
				parts = append(parts, c)
			}
		}
	}
	walk(t)
	slices.Sort(parts)
	return parts, inside, false, nil
}

// capTargets maps an info block to areas: geocodes that are area ids, and
// the areas of the nodes inside its polygons and circles.
func (s *Server) capTargets(ctx context.Context, in *cap.Info) ([]string, error) {
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return nil, fmt.Errorf("cap: nodes: %w", err)
	}
	pos := make([]cap.NodePosition, 0, len(nodes))
	for _, n := range nodes {
		pos = append(pos, cap.NodePosition{Area: n.Area, Lat: n.Lat, Lon: n.Lon})
	}
	return cap.Targets(in, func(id string) bool {
		_, err := s.AreaService.FindAreaByID(ctx, id)
		return err == nil
	}, pos), nil
}

// capExpired reports whether every info block rec plays has expired at
// now, and when the last did. Each block is judged on its own: a later
// block may still hold when the first has expired.
func capExpired(rec *loaxa.CapAlert, now time.Time) (time.Time, bool) {
	blocks := rec.Blocks
	if len(blocks) == 0 {
		blocks = []loaxa.CapBlock{{Expires: rec.Expires}}
	}
	var last time.Time
	for _, b := range blocks {
		if b.Expires.IsZero() || b.Expires.After(now) {
			return time.Time{}, false
		}
		if b.Expires.After(last) {
			last = b.Expires
		}
	}
	return last, true
}

// playCap sends the emergency of a stored CAP alert and notes it: its
// text read out, after the recording kept for its event type if there is
// one (as J-Alert plays a fixed message per kind of alert: kept on the
// clusters, it sounds at once while the words download). With a recording
// and no speech (text-to-speech down, or no text) the recording alone
// plays. An alert that plays several info blocks sends one emergency per
// block, each to its areas; every block's audio is made before any is
// sent, so that one that cannot be leaves nothing half sent. A block that
// expired while the alert waited for approval is left out. It returns the
// first block's emergency, whose words and expiry the record then gives.
func (s *Server) playCap(ctx context.Context, store loaxa.CapStore, svc loaxa.EmergencyService, rec *loaxa.CapAlert, actor, remote string) (*loaxa.Emergency, error) {
	blocks := slices.Clone(rec.Blocks)
	if len(blocks) == 0 {
		blocks = []loaxa.CapBlock{{Event: rec.Event, Headline: rec.Headline, Text: rec.Text, Targets: rec.Targets, Expires: rec.Expires}}
	}
	now := s.now()
	var plays []int   // the blocks that have not expired
	var gone []string // a note for each that has, while the alert waited
	for i, b := range blocks {
		if b.Expires.IsZero() || b.Expires.After(now) {
			plays = append(plays, i)
			continue
		}
		gone = append(gone, fmt.Sprintf("%s not played: it expired at %s while the alert waited",
			cap.BlockLabel(b.Position, b.Headline, b.Event), b.Expires.Format(time.RFC3339)))
	}
	if len(plays) == 0 {
		return nil, loaxa.Errorf(loaxa.EConflict, "CAP alert %s expired.", rec.ID)
	}
	reqs := make([]loaxa.EmergencyRequest, len(blocks))
	for _, i := range plays {
		b := &blocks[i]
		req, recording, err := s.capRequest(ctx, store, rec.ID, b, actor)
		if err != nil {
			return nil, err
		}
		req.Drill = rec.Status == "Exercise"
		reqs[i], b.Recording = req, recording
	}
	var first *loaxa.Emergency
	var errs []error
	for n, i := range plays {
		req := reqs[i]
		em, err := svc.SendEmergency(ctx, req)
		if err != nil {
			if em == nil {
				s.logger().Error("cap: an info block's emergency not sent", "cap", rec.ID, "block", i+1, "targets", req.Targets, "err", err)
			}
			errs = append(errs, err)
		}
		if em == nil {
			if n == 0 {
				return nil, err // nothing sent yet: the alert waits for approval
			}
			continue
		}
		s.auditActor(ctx, actor, remote, auditEmergencySend, em.ID, em.Targets, "cap="+rec.ID+" "+emergencyDetail(em))
		blocks[i].Emergency = em.ID
		if n == 0 {
			first = em
		}
	}
	// The record says what played: the first block that did, which is not
	// the first one received if that expired while the alert waited.
	played := blocks[plays[0]]
	if _, uerr := store.UpdateCapAlert(ctx, rec.ID, func(a *loaxa.CapAlert) error {
		a.Emergency, a.Recording = first.ID, played.Recording
		a.Event, a.Headline, a.Text, a.Expires = played.Event, played.Headline, played.Text, played.Expires
		if len(a.Blocks) == len(blocks) {
			a.Blocks = blocks
		}
		if len(gone) > 0 {
			a.Approval = strings.Join(gone, "; ")
		}
		return nil
	}); uerr != nil {
		return first, uerr
	}
	if len(errs) > 0 {
		return first, errs[0]
	}
	return first, nil
}

// capRequest makes the emergency of one info block of CAP alert id, and
// returns the recording kept for its event type that it plays, if any.
func (s *Server) capRequest(ctx context.Context, store loaxa.CapStore, id string, b *loaxa.CapBlock, actor string) (loaxa.EmergencyRequest, string, error) {
	recording, err := capRecording(ctx, store, b.Event)
	if err != nil {
		return loaxa.EmergencyRequest{}, "", err
	}
	var contentID, text, intro string
	switch {
	case recording == "":
		if contentID, text, err = s.emergencyContent(ctx, actor, &emergencyMessage{Text: b.Text}); err != nil {
			return loaxa.EmergencyRequest{}, "", err
		}
	case strings.TrimSpace(b.Text) == "" || s.SpeechEngine == nil:
		contentID = recording
	default:
		contentID, text, err = s.emergencyContent(ctx, actor, &emergencyMessage{Text: b.Text})
		if err != nil {
			s.logger().Warn("cap: the text cannot be read out; the kept recording plays alone", "cap", id, "recording", recording, "err", err)
			contentID, text = recording, ""
		} else {
			intro = recording
		}
	}
	expires := b.Expires
	if max := s.now().Add(loaxa.MaxEmergencyWindow); expires.After(max) {
		expires = max
	}
	return loaxa.EmergencyRequest{
		Kind: loaxa.EmergencyAlert, Title: b.Headline, ContentID: contentID, Text: text, IntroContentID: intro, Targets: b.Targets,
		Expires: expires, CreatedBy: actor,
	}, recording, nil
}

// capRecording returns the recording kept for CAP event type event
// (compared without case, as the auto-start list), or "".
func capRecording(ctx context.Context, store loaxa.CapStore, event string) (string, error) {
	if strings.TrimSpace(event) == "" {
		return "", nil
	}
	recordings, err := store.CapRecordings(ctx)
	if err != nil {
		return "", fmt.Errorf("cap: recordings: %w", err)
	}
	for e, id := range recordings {
		if strings.EqualFold(strings.TrimSpace(e), strings.TrimSpace(event)) {
			return id, nil
		}
	}
	return "", nil
}

// handleApproveCap answers POST /api/v1/cap/{id}/approve: plays an alert
// that waits for approval (its event is not on the auto-start list).
func (s *Server) handleApproveCap(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	store, svc, err := s.capStore()
	if err != nil {
		return err
	}
	ctx := r.Context()
	rec, err := s.findCap(ctx, store, r.PathValue("id"))
	if err != nil {
		return err
	}
	// Approving sends an emergency to every target: the approver needs
	// that right on each of them, as if they sent it themselves.
	for _, t := range rec.Targets {
		if err := s.authorizeOn(ctx, loaxa.ActionEmergency, t, fmt.Sprintf("Part of CAP alert %s", rec.ID)); err != nil {
			return err
		}
	}
	if rec.Action != string(cap.ActionPending) {
		return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonCapDecided, Message: fmt.Sprintf("CAP alert %s is %s, not waiting for approval.", rec.ID, rec.Action)}
	}
	if last, expired := capExpired(rec, s.now()); expired {
		return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonCapExpired, Message: fmt.Sprintf("CAP alert %s expired at %s.", rec.ID, last.Format(time.RFC3339))}
	}
	// An Update stops the warnings it updates once it plays; they kept
	// sounding while it waited. The approver needs the right to stop them.
	var replaces []*loaxa.CapAlert
	if rec.MsgType == "Update" {
		replaces, _, err = withdrawable(ctx, store, rec.Status, rec.MsgType, rec.References, func(area string) error {
			return s.authorize(ctx, loaxa.ActionEmergency, area)
		})
		if err != nil {
			return err
		}
	}
	rec, err = store.UpdateCapAlert(ctx, rec.ID, func(a *loaxa.CapAlert) error {
		if a.Action != string(cap.ActionPending) {
			return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonCapDecided, Message: fmt.Sprintf("CAP alert %s was %s meanwhile.", a.ID, a.Action)}
		}
		// The reason stays: what of the alert does not play, and why it
		// waited, are still true. The route that approves it is not.
		a.Action, a.ApprovedBy, a.ApprovedAt = "approved", userFrom(ctx).Username, s.now()
		a.Reason = capNote(capWithoutApproveNote(a.Reason, a.ID), s.capSay(ctx, nil, a, capApprovedNote(a)))
		return nil
	})
	if err != nil {
		return err
	}
	em, err := s.playCap(ctx, store, svc, rec, userFrom(ctx).Username, r.RemoteAddr)
	s.auditIn(r, auditCapApprove, rec.ID, rec.Targets, "key="+rec.Key)
	if err != nil && em == nil {
		// Nothing was sent (text-to-speech down, say): it waits again, as
		// one that could not be played on arrival does. Left approved, it
		// could never be approved, nor played, again.
		note := fmt.Sprintf("approval by %s could not be played (%s); approve it again once that is fixed",
			userFrom(ctx).Username, loaxa.ErrorMessage(err))
		if _, uerr := store.UpdateCapAlert(context.WithoutCancel(ctx), rec.ID, func(a *loaxa.CapAlert) error {
			// It was not approved after all: the note that says it was
			// gives way to why not.
			a.Reason = capWithout(a.Reason, capApprovedNote(a).in(a.Reason))
			a.Action, a.ApprovedBy, a.ApprovedAt = string(cap.ActionPending), "", time.Time{}
			a.Reason = capNote(capNote(a.Reason, note), capApproveNote(a.ID))
			return nil
		}); uerr != nil {
			s.logger().Error("cap: alert left approved, not played", "cap", rec.ID, "err", uerr)
		}
		return err
	}
	// Only once the update sounds: never a moment of silence between. An
	// update stored but not published (the broker away) withdraws them
	// too: it is sent, and their cancels follow, once the broker is back;
	// left alone they would sound on after it, and the approval cannot be
	// made again.
	var cancelled []string
	for _, old := range replaces {
		ids, werr := s.withdrawCap(ctx, store, svc, old, userFrom(ctx).Username, r.RemoteAddr, loaxa.CapWithdrawal{By: rec.ID, Key: rec.Key, MsgType: rec.MsgType, At: s.now()})
		if werr != nil && (err == nil || loaxa.ErrorCode(werr) != loaxa.EUnavailable) {
			return werr
		}
		cancelled = append(cancelled, ids...)
	}
	if err != nil {
		return s.answerSent(w, r, em, err)
	}
	rec = mustCap(store.FindCapAlertByID(ctx, rec.ID))
	s.writeJSON(w, r, http.StatusOK, capResponse{Action: rec.Action, Alert: rec, Emergency: em, Cancelled: cancelled})
	return nil
}

// capShown returns a as the API shows it: a record an older controller
// stored says what became of it as one stored now does. One approved or
// withdrawn before the approval route was taken off its reason then does
// not tell an officer to approve it; one approved, or withdrawn after it
// played, before the reason said so, says it (from approved_by and
// approved_at, and withdrawn). zones keeps the areas' time zones for a
// list (capTime), or is nil.
func (s *Server) capShown(ctx context.Context, zones capZones, a *loaxa.CapAlert) *loaxa.CapAlert {
	if a.Action == string(cap.ActionPending) {
		return a
	}
	a.Reason = capWithoutApproveNote(a.Reason, a.ID)
	for _, note := range []capInstant{capApprovedNote(a), capWithdrawnNote(a)} {
		if note.head != "" && note.in(a.Reason) == "" {
			a.Reason = capNote(a.Reason, s.capSay(ctx, zones, a, note))
		}
	}
	return a
}

// capListActions are the actions a stored CAP alert can have, which
// GET /api/v1/cap?action= filters on.
var capListActions = []string{
	string(cap.ActionPlay), string(cap.ActionDrill), string(cap.ActionPending), "approved",
	string(cap.ActionCancel), string(cap.ActionLog), string(cap.ActionExpired),
	string(cap.ActionNoTarget), string(cap.ActionCancelled),
}

// handleListCap answers GET /api/v1/cap?limit=&action=: received alerts
// that touch the caller's area (findCap), newest first; with action, only
// those with that action, so that an alert waiting for approval is found
// however many newer ones came after it.
func (s *Server) handleListCap(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "limit", "action"); err != nil {
		return err
	}
	action := r.URL.Query().Get("action")
	if action != "" && !slices.Contains(capListActions, action) {
		return loaxa.Errorf(loaxa.EInvalid, "action %q is not a CAP alert's action; use one of %s.", action, strings.Join(capListActions, ", "))
	}
	store, _, err := s.capStore()
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
	all, err := store.FindCapAlerts(ctx, 0)
	if err != nil {
		return err
	}
	sc, err := s.scopeOf(ctx, userFrom(ctx), false)
	if err != nil {
		return err
	}
	alerts := []*loaxa.CapAlert{}
	zones := capZones{}
	for _, a := range all {
		if len(alerts) == limit {
			break
		}
		if (action == "" || a.Action == action) && sc.touches(a.Targets) {
			alerts = append(alerts, s.capShown(ctx, zones, a))
		}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"alerts": alerts})
	return nil
}

// findCap returns CAP alert id if it touches the caller's area: one of
// its targets lies within the caller's area or above it (an alert there
// reaches the caller's area too). Alerts without targets (recorded only,
// or for areas this controller does not have) are seen by whole-tree
// users only. Like anything else outside the caller's area (docs/api.md),
// an alert they may not see answers 403.
func (s *Server) findCap(ctx context.Context, store loaxa.CapStore, id string) (*loaxa.CapAlert, error) {
	a, err := store.FindCapAlertByID(ctx, id)
	if err != nil {
		return nil, err
	}
	sc, err := s.scopeOf(ctx, userFrom(ctx), false)
	if err != nil {
		return nil, err
	}
	if !sc.touches(a.Targets) {
		u := userFrom(ctx)
		if len(a.Targets) == 0 {
			return nil, loaxa.Errorf(loaxa.EForbidden, "CAP alert %s names no area of this controller; only a user over the whole tree may read it.", id)
		}
		return nil, loaxa.Errorf(loaxa.EForbidden, "CAP alert %s is for areas outside your area %q.", id, u.Area)
	}
	return a, nil
}

// handleGetCap answers GET /api/v1/cap/{id}: 403 for an alert the caller
// may not see (findCap).
func (s *Server) handleGetCap(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	store, _, err := s.capStore()
	if err != nil {
		return err
	}
	a, err := s.findCap(r.Context(), store, r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, s.capShown(r.Context(), nil, a))
	return nil
}

// autoStartBody is the body and answer of /api/v1/cap/auto-start.
type autoStartBody struct {
	Events []string `json:"events"`
}

// recordingsBody is the body of GET and PUT /api/v1/cap/recordings.
type recordingsBody struct {
	Recordings map[string]string `json:"recordings"`
}

// handleGetCapRecordings answers GET /api/v1/cap/recordings: the
// recordings played for CAP event types instead of their text.
func (s *Server) handleGetCapRecordings(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	store, _, err := s.capStore()
	if err != nil {
		return err
	}
	recordings, err := store.CapRecordings(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, recordingsBody{Recordings: recordings})
	return nil
}

// capRecordingsDetail is the audit detail of the CAP recordings set:
// each event type, quoted (it is free text), and its content, by event
// type, `event="Sóng thần" content=<hash>, event=…`, so that the audio is
// named like any other's; "none=true" for none. They were written
// "Sóng thần=<hash>,…", which named no audio: the console showed hashes.
func capRecordingsDetail(recordings map[string]string) string {
	if len(recordings) == 0 {
		return "none=true"
	}
	pairs := make([]string, 0, len(recordings))
	for _, e := range slices.Sorted(maps.Keys(recordings)) {
		pairs = append(pairs, fmt.Sprintf("event=%q content=%s", e, recordings[e]))
	}
	return strings.Join(pairs, ", ")
}

// capAutoStartDetail is the audit detail of the auto-start list set: the
// event types as one JSON list, `events=["Bão","Lũ quét"]` (`events=[]`
// for none), each quoted as the free text it is. They were joined with
// commas ("Bão,Lũ quét"), which the console could not label and an event
// type holding a comma split in two.
func capAutoStartDetail(events []string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	// "Lũ & sạt lở" as written, not \u0026.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(nonNil(events)); err != nil {
		return "events=[]" // never: a []string always encodes
	}
	return "events=" + strings.TrimSuffix(b.String(), "\n")
}

// handlePutCapRecordings answers PUT /api/v1/cap/recordings: replaces
// them (whole-tree users only, as the auto-start list: what plays for an
// alert no person reads first). Each must be stored content.
func (s *Server) handlePutCapRecordings(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	store, _, err := s.capStore()
	if err != nil {
		return err
	}
	ctx := r.Context()
	if u := userFrom(ctx); u.Area != "" {
		return loaxa.Errorf(loaxa.EForbidden, "Only a user over the whole tree may change what CAP alerts play.")
	}
	var body recordingsBody
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Recordings == nil {
		return loaxa.Errorf(loaxa.EInvalid, "recordings is missing: map each CAP event type to the content played for it, e.g. {\"recordings\": {\"Sóng thần\": \"<content id>\"}}, or {} for none.")
	}
	recordings := make(map[string]string, len(body.Recordings))
	seen := map[string]string{}
	for e, id := range body.Recordings {
		event, err := cleanText("recordings", e, true)
		if err != nil {
			return err
		}
		if prev, dup := seen[strings.ToLower(event)]; dup {
			return loaxa.Errorf(loaxa.EInvalid, "recordings names the event type %q twice (as %q and %q); event types are compared without case.", event, prev, event)
		}
		seen[strings.ToLower(event)] = event
		c, err := s.findContent(ctx, id)
		if err != nil {
			if loaxa.ErrorCode(err) == loaxa.ENotFound {
				return loaxa.Errorf(loaxa.EInvalid, "recordings[%q]: there is no content %q; upload the recording first and give its id.", event, id)
			}
			return err
		}
		recordings[event] = c.ID
	}
	if err := store.SetCapRecordings(ctx, recordings); err != nil {
		return err
	}
	s.audit(r, auditCapRecordings, "cap", "", capRecordingsDetail(recordings))
	s.writeJSON(w, r, http.StatusOK, recordingsBody{Recordings: recordings})
	return nil
}

// handleCapFeeds answers GET /api/v1/cap/feeds: each configured feed,
// when it was last polled without an error, and the failures since, so
// that officers see a warning service that went quiet.
func (s *Server) handleCapFeeds(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	feeds := []cap.FeedStatus{}
	if s.CapFeeds != nil {
		feeds = s.CapFeeds.Status()
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"feeds": feeds})
	return nil
}

// handleGetCapAutoStart answers GET /api/v1/cap/auto-start: the CAP event
// types that play without approval.
func (s *Server) handleGetCapAutoStart(w http.ResponseWriter, r *http.Request) error {
	store, _, err := s.capStore()
	if err != nil {
		return err
	}
	events, err := store.CapAutoStart(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, autoStartBody{Events: nonNil(events)})
	return nil
}

// handlePutCapAutoStart answers PUT /api/v1/cap/auto-start: replaces the
// list (whole-tree users only: it decides what plays without a person).
func (s *Server) handlePutCapAutoStart(w http.ResponseWriter, r *http.Request) error {
	store, _, err := s.capStore()
	if err != nil {
		return err
	}
	if u := userFrom(r.Context()); u.Area != "" {
		return loaxa.Errorf(loaxa.EForbidden, "Only a user over the whole tree may change what CAP alerts start on their own.")
	}
	var body autoStartBody
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	var events []string
	for _, e := range body.Events {
		e, err := cleanText("events", e, true)
		if err != nil {
			return err
		}
		events = append(events, e)
	}
	if err := store.SetCapAutoStart(r.Context(), nonNil(events)); err != nil {
		return err
	}
	s.audit(r, auditCapAutoStart, "cap", "", capAutoStartDetail(events))
	s.writeJSON(w, r, http.StatusOK, autoStartBody{Events: nonNil(events)})
	return nil
}

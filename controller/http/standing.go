package http

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"loaxa.vn/controller/loaxa"
)

// auditStanding is the audit action of a change to standing content.
const auditStanding = "content.standing"

// standingView is standing content as GET /content/standing lists it.
type standingView struct {
	*loaxa.StandingContent
	Title      string `json:"title"`
	Size       int64  `json:"size"`
	DurationMS int64  `json:"duration_ms"`
	// Nodes counts the nodes in the caller's scope that are to keep it;
	// Ready those that have it: they run the desired state that names it
	// and do not report it missing.
	Nodes int `json:"nodes"`
	Ready int `json:"ready"`
	// Text is the text the content was spoken from, when an emergency's
	// typed text would be spoken alike (the default voice, rate 1): the
	// same words typed in an emergency are this content.
	Text string `json:"text,omitempty"`
}

// standingViewOf is e with what its content says.
func (s *Server) standingViewOf(e *loaxa.StandingContent, c *loaxa.Content) *standingView {
	v := &standingView{StandingContent: e, Title: c.Title, Size: c.Size, DurationMS: c.DurationMS}
	if tts := s.SpeechEngine; tts != nil && len(tts.Voices()) > 0 && c.Source.Format == tts.Name() && c.Source.Voice == tts.Voices()[0] && c.Source.Rate == 1 {
		v.Text = c.Source.Text
	}
	return v
}

// handleListStanding answers GET /api/v1/content/standing: the content
// kept on the nodes of some areas at all times that reaches the caller's
// scope, with how many of the nodes in the scope have it.
func (s *Server) handleListStanding(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if s.StandingService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Standing content is not kept by this controller.")
	}
	ctx := r.Context()
	u := userFrom(ctx)
	sc, err := s.scopeOf(ctx, u, false)
	if err != nil {
		return err
	}
	all, err := s.StandingService.FindStanding(ctx)
	if err != nil {
		return err
	}
	views := []*standingView{}
	for _, e := range all {
		if !sc.touches(e.Areas) {
			continue
		}
		c, err := s.ContentService.FindContentByID(ctx, e.Content)
		if err != nil {
			return fmt.Errorf("standing content %s: %w", e.Content, err)
		}
		views = append(views, s.standingViewOf(e, c))
	}
	if err := s.countStanding(ctx, u.Area, views); err != nil {
		return err
	}
	always := []string{}
	if s.AlwaysContent != nil {
		if always, err = s.AlwaysContent(ctx); err != nil {
			return fmt.Errorf("content every node keeps: %w", err)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, map[string]any{"standing": views, "always": always, "max_bytes": loaxa.StandingMaxBytes})
	return nil
}

// countStanding counts, for each view, the nodes within area ("" the whole
// tree) that are to keep it and those that have it.
func (s *Server) countStanding(ctx context.Context, area string, views []*standingView) error {
	if len(views) == 0 {
		return nil
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: area})
	if err != nil {
		return fmt.Errorf("standing content: nodes: %w", err)
	}
	chains := map[string][]string{}
	for _, n := range nodes {
		chain, ok := chains[n.Area]
		if !ok {
			if chain, err = s.AreaService.AreaChain(ctx, n.Area); err != nil {
				return fmt.Errorf("standing content: area of %s: %w", n.ID, err)
			}
			chains[n.Area] = chain
		}
		var desired map[string]bool // the content of the desired state the node runs, read once
		for _, v := range views {
			if !slices.ContainsFunc(v.Areas, func(a string) bool { return slices.Contains(chain, a) }) {
				continue
			}
			v.Nodes++
			st := n.Status
			if st.DesiredVersion == 0 || st.RunningVersion != st.DesiredVersion || slices.Contains(st.ContentMissing, v.Content) {
				continue
			}
			if desired == nil {
				desired = map[string]bool{}
				if d, err := s.DesiredService.FindDesired(ctx, n.ID); err == nil && d.State != nil && d.State.Version == st.RunningVersion {
					for _, c := range d.State.Content {
						desired[c.ID] = true
					}
				}
			}
			if desired[v.Content] {
				v.Ready++
			}
		}
	}
	return nil
}

// handleSetStanding answers PUT /api/v1/content/{id}/standing
// {"areas": [...]}: the content is kept on every node of those areas at
// all times (none: nowhere). The caller must be allowed to send
// emergencies to every area added or removed. 200 with the standing
// content as listed.
func (s *Server) handleSetStanding(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if s.StandingService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Standing content is not kept by this controller.")
	}
	ctx := r.Context()
	c, err := s.findContent(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req struct {
		Areas []string `json:"areas"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Areas == nil {
		return loaxa.Errorf(loaxa.EInvalid, "areas is missing: name the areas whose clusters keep this content, e.g. {\"areas\": [\"31\"]}, or [] for none.")
	}
	areas := slices.Compact(slices.Sorted(slices.Values(req.Areas)))
	for _, a := range areas {
		if _, err := s.requireArea(ctx, "areas", a); err != nil {
			return err
		}
	}
	all, err := s.StandingService.FindStanding(ctx)
	if err != nil {
		return err
	}
	var old []string
	if i := slices.IndexFunc(all, func(e *loaxa.StandingContent) bool { return e.Content == c.ID }); i >= 0 {
		old = all[i].Areas
	}
	// The areas outside the caller's own subtree are not the caller's to
	// name: those that keep the content keep it. A commune officer who
	// keeps a warning on the commune does not take it off the island
	// district the province keeps it on, nor needs to know of it.
	u := userFrom(ctx)
	sc, err := s.scopeOf(ctx, u, false)
	if err != nil {
		return err
	}
	if !sc.all {
		for _, a := range old {
			if !sc.within[a] {
				areas = append(areas, a)
			}
		}
		areas = slices.Compact(slices.Sorted(slices.Values(areas)))
	}
	// Whoever adds or removes an area must be allowed to alert it: what
	// its clusters keep ready is for its emergencies.
	for _, a := range symmetricDifference(old, areas) {
		if err := s.authorize(ctx, loaxa.ActionEmergency, a); err != nil {
			return err
		}
	}
	if err := s.checkStandingBudget(ctx, all, c, areas); err != nil {
		return err
	}
	stored, err := s.StandingService.SetStanding(ctx, c.ID, areas, u.Username)
	if err != nil {
		return err
	}
	s.auditIn(r, auditStanding, c.ID, slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(old), areas...)))), fmt.Sprintf("areas=%v before=%v title=%q size=%d", areas, old, c.Title, c.Size))
	s.changed()
	if stored == nil {
		stored = &loaxa.StandingContent{Content: c.ID, Areas: []string{}, By: u.Username, At: s.now()}
	}
	view := s.standingViewOf(stored, c)
	if err := s.countStanding(ctx, u.Area, []*standingView{view}); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, view)
	return nil
}

// checkStandingBudget refuses a change that would have some node keep
// more than loaxa.StandingMaxBytes of standing content: c kept by the
// nodes of areas, the rest as all says.
func (s *Server) checkStandingBudget(ctx context.Context, all []*loaxa.StandingContent, c *loaxa.Content, areas []string) error {
	if len(areas) == 0 {
		return nil
	}
	type kept struct {
		areas []string
		size  int64
	}
	list := []kept{{areas, c.Size}}
	for _, e := range all {
		if e.Content == c.ID {
			continue
		}
		ct, err := s.ContentService.FindContentByID(ctx, e.Content)
		if err != nil {
			return fmt.Errorf("standing content %s: %w", e.Content, err)
		}
		list = append(list, kept{e.Areas, ct.Size})
	}
	// Every area where c is to be kept (in a subtree of one of areas), its
	// chain from one read of the tree: what its nodes would keep.
	tree, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{})
	if err != nil {
		return fmt.Errorf("standing content: areas: %w", err)
	}
	parent := make(map[string]string, len(tree))
	for _, a := range tree {
		parent[a.ID] = a.Parent
	}
	for _, x := range tree {
		var chain []string
		for a := x.ID; a != "" && len(chain) <= len(tree); a = parent[a] {
			chain = append(chain, a)
		}
		if !slices.ContainsFunc(areas, func(a string) bool { return slices.Contains(chain, a) }) {
			continue // no node here is to keep c
		}
		var sum int64
		for _, k := range list {
			if slices.ContainsFunc(k.areas, func(a string) bool { return slices.Contains(chain, a) }) {
				sum += k.size
			}
		}
		if sum > loaxa.StandingMaxBytes {
			return loaxa.Errorf(loaxa.ETooLarge, "The clusters of %s (%s) would keep %d MiB of standing content, over the %d MiB a cluster keeps ready: make other content standing in fewer areas first.",
				x.Name, x.ID, sum>>20, loaxa.StandingMaxBytes>>20)
		}
	}
	return nil
}

// symmetricDifference returns what is in one of the sorted lists a and b
// but not the other.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

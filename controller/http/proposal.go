package http

import (
	"errors"
	"fmt"
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// decisionRequest is the body of POST /api/v1/proposals/{id}/accept and
// /decline.
type decisionRequest struct {
	Session string `json:"session"`
	Note    string `json:"note"`
	// Force accepts despite conflicts, as it creates an announcement.
	Force bool `json:"force"`
}

// decidedProposal answers an accept or decline: the proposal and the
// conflicts it was forced in with.
type decidedProposal struct {
	*loaxa.Proposal
	Conflicts []loaxa.Conflict `json:"conflicts,omitempty"`
}

// proposalDecidedResponse answers a decision on a proposal no longer
// pending (409): the error and the proposal as it stands (who decided
// what, and when; or withdrawn), so that a client can say it in its words.
type proposalDecidedResponse struct {
	Error    errorBody       `json:"error"`
	Proposal *loaxa.Proposal `json:"proposal"`
}

// proposalsResponse answers GET /api/v1/proposals.
type proposalsResponse struct {
	Proposals []*loaxa.Proposal `json:"proposals"`
}

func (s *Server) proposalsAvailable() error {
	if s.ProposalService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Proposals are not available on this controller.")
	}
	return nil
}

// handleListProposals answers GET /api/v1/proposals?area=&state=&announcement=:
// the proposals to stations in the user's area.
func (s *Server) handleListProposals(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area", "state", "announcement"); err != nil {
		return err
	}
	if err := s.proposalsAvailable(); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	f := loaxa.ProposalFilter{State: q.Get("state"), Announcement: q.Get("announcement")}
	switch f.State {
	case "", loaxa.ProposalPending, loaxa.ProposalAccepted, loaxa.ProposalDeclined, loaxa.ProposalWithdrawn:
	default:
		return loaxa.Errorf(loaxa.EInvalid, "state %q is not a proposal state; use pending, accepted, declined or withdrawn.", f.State)
	}
	within := userFrom(ctx).Area
	if area := q.Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
		within = area
	}
	if within != "" {
		areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: within})
		if err != nil {
			return fmt.Errorf("list proposals: %w", err)
		}
		f.Areas = []string{}
		for _, a := range areas {
			f.Areas = append(f.Areas, a.ID)
		}
	}
	ps, err := s.ProposalService.FindProposals(ctx, f)
	if err != nil {
		return fmt.Errorf("list proposals: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, proposalsResponse{Proposals: nonNil(ps)})
	return nil
}

// handleAcceptProposal answers POST /api/v1/proposals/{id}/accept.
func (s *Server) handleAcceptProposal(w http.ResponseWriter, r *http.Request) error {
	return s.decideProposal(w, r, loaxa.ProposalAccepted)
}

// handleDeclineProposal answers POST /api/v1/proposals/{id}/decline.
func (s *Server) handleDeclineProposal(w http.ResponseWriter, r *http.Request) error {
	return s.decideProposal(w, r, loaxa.ProposalDeclined)
}

// decideProposal records a station officer's decision. Only someone who
// may schedule on the station's area decides, which is the commune
// officer (or anyone above who covers it).
func (s *Server) decideProposal(w http.ResponseWriter, r *http.Request, state string) error {
	var req decisionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.proposalsAvailable(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	p, err := s.ProposalService.FindProposalByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no proposal %q; list them with GET /api/v1/proposals.", id)
	} else if err != nil {
		return fmt.Errorf("decide proposal %s: %w", id, err)
	}
	if err := s.authorizeOn(ctx, loaxa.ActionSchedule, p.Area, fmt.Sprintf("Proposal %s", p.ID)); err != nil {
		return err
	}
	if state == loaxa.ProposalDeclined && req.Session != "" {
		return loaxa.Errorf(loaxa.EInvalid, "session is for accepting; leave it out to decline.")
	}
	pending := p.State == loaxa.ProposalPending
	p.State, p.Session, p.DecidedBy = state, req.Session, userFrom(ctx).Username
	if p.Note, err = cleanText("note", req.Note, false); err != nil {
		return err
	}
	// Accepting places the bulletin as creating it there would: the same
	// conflicts refuse it, or a one-off accepted into a session over
	// before its start would play early.
	var conflicts []loaxa.Conflict
	if state == loaxa.ProposalAccepted && pending && s.ProgrammeService != nil {
		conflicts, err = s.ProgrammeService.CheckProposal(ctx, p)
		if loaxa.ErrorCode(err) == loaxa.EInternal {
			s.writeFault(w, r, "proposal conflict check failed", err,
				fmt.Sprintf("Proposal %s was not accepted: the controller failed while checking it against the programme", p.ID),
				"It is still pending. "+tryAgain, "proposal", p.ID)
			return nil
		} else if err != nil {
			return fmt.Errorf("decide proposal %s: %w", id, err)
		}
		if len(conflicts) > 0 && !req.Force {
			s.writeJSON(w, r, http.StatusConflict, conflictResponse{
				Error: errorBody{Code: loaxa.EConflict, Message: fmt.Sprintf(
					"Accepting proposal %s conflicts with the programme in %s: %s Pick another session, or send the same request with \"force\": true to accept it anyway.",
					p.ID, loaxa.Count(len(conflicts), "place", "places"), conflicts[0].Message)},
				Conflicts: conflicts,
			})
			return nil
		}
	}
	var decided *loaxa.ProposalDecidedError
	if err := s.ProposalService.DecideProposal(ctx, p); errors.As(err, &decided) {
		s.writeJSON(w, r, http.StatusConflict, proposalDecidedResponse{
			Error:    errorBody{Code: loaxa.EConflict, Message: loaxa.ErrorMessage(err)},
			Proposal: decided.Proposal,
		})
		return nil
	} else if err != nil {
		if c := loaxa.ErrorCode(err); c == loaxa.EInvalid || c == loaxa.EConflict {
			return err
		}
		return fmt.Errorf("decide proposal %s: %w", id, err)
	}
	s.changed()
	// Facts the console words ("session=s000001 conflicts=2"), not
	// English prose ("2 conflicts forced").
	s.audit(r, "proposal."+state, p.ID, p.Area, fmt.Sprintf("session=%s conflicts=%d", p.Session, len(conflicts)))
	s.writeJSON(w, r, http.StatusOK, decidedProposal{Proposal: p, Conflicts: conflicts})
	return nil
}

package http

import (
	"fmt"
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// holidayRequest is the body of POST /api/v1/holidays.
type holidayRequest struct {
	Area string `json:"area"`
	Date string `json:"date"`
	Name string `json:"name"`
}

// holidaysResponse answers GET /api/v1/holidays.
type holidaysResponse struct {
	Holidays []*loaxa.Holiday `json:"holidays"`
}

func (s *Server) holidaysAvailable() error {
	if s.HolidayService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "The holiday calendar is not available on this controller.")
	}
	return nil
}

// handleListHolidays answers GET /api/v1/holidays?area=: the holidays that
// apply to the area (its own, its ancestors' and the global ones); without
// area, those that apply somewhere in the user's subtree (all for a user
// without an area).
func (s *Server) handleListHolidays(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area"); err != nil {
		return err
	}
	if err := s.holidaysAvailable(); err != nil {
		return err
	}
	ctx := r.Context()
	var f loaxa.HolidayFilter
	if area := r.URL.Query().Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
		chain, err := s.AreaService.AreaChain(ctx, area)
		if err != nil {
			return fmt.Errorf("list holidays: %w", err)
		}
		f.Areas = chain
	} else if u := userFrom(ctx); u.Area != "" {
		chain, err := s.AreaService.AreaChain(ctx, u.Area)
		if err != nil {
			return fmt.Errorf("list holidays: %w", err)
		}
		below, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: u.Area})
		if err != nil {
			return fmt.Errorf("list holidays: %w", err)
		}
		f.Areas = chain
		for _, a := range below {
			if a.ID != u.Area {
				f.Areas = append(f.Areas, a.ID)
			}
		}
	}
	hs, err := s.HolidayService.FindHolidays(ctx, f)
	if err != nil {
		return fmt.Errorf("list holidays: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, holidaysResponse{Holidays: nonNil(hs)})
	return nil
}

// handleCreateHoliday answers POST /api/v1/holidays. A global holiday (no
// area) needs a user without an area (admin).
func (s *Server) handleCreateHoliday(w http.ResponseWriter, r *http.Request) error {
	var req holidayRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.holidaysAvailable(); err != nil {
		return err
	}
	ctx := r.Context()
	if req.Area != "" {
		if _, err := s.requireArea(ctx, "area", req.Area); err != nil {
			return err
		}
	} else if u := userFrom(ctx); u.Area != "" {
		return loaxa.Errorf(loaxa.EForbidden, "A holiday without an area applies everywhere; give area (your area %q or one below it).", u.Area)
	}
	if err := s.authorize(ctx, loaxa.ActionSchedule, req.Area); err != nil {
		return err
	}
	h := &loaxa.Holiday{Area: req.Area, Date: req.Date, CreatedBy: userFrom(ctx).Username}
	var err error
	if h.Name, err = cleanText("name", req.Name, true); err != nil {
		return err
	}
	if err := s.HolidayService.CreateHoliday(ctx, h); err != nil {
		if c := loaxa.ErrorCode(err); c == loaxa.EInvalid || c == loaxa.EConflict {
			return err
		}
		return fmt.Errorf("create holiday: %w", err)
	}
	s.changed()
	s.audit(r, "holiday.create", h.ID, h.Area, h.Date)
	s.writeJSON(w, r, http.StatusCreated, h)
	return nil
}

// handleDeleteHoliday answers DELETE /api/v1/holidays/{id}.
func (s *Server) handleDeleteHoliday(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if err := s.holidaysAvailable(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	// The one holiday, not the calendar: a province's thousands were read
	// and sorted for each delete.
	h, err := s.HolidayService.FindHolidayByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no holiday %q; list them with GET /api/v1/holidays.", id)
	} else if err != nil {
		return fmt.Errorf("delete holiday %s: %w", id, err)
	}
	if h.Area == "" && userFrom(ctx).Area != "" {
		return loaxa.Errorf(loaxa.EForbidden, "Holiday %s applies everywhere; only a user without an area may remove it.", id)
	}
	if err := s.authorizeOn(ctx, loaxa.ActionSchedule, h.Area, fmt.Sprintf("Holiday %s", id)); err != nil {
		return err
	}
	if err := s.HolidayService.DeleteHoliday(ctx, id); err != nil {
		return fmt.Errorf("delete holiday %s: %w", id, err)
	}
	s.changed()
	s.audit(r, "holiday.delete", id, h.Area, h.Date)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

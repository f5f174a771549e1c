package http

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"loaxa.vn/controller/loaxa"
)

// MaxReportSpan is the longest report range: a year and a day, for the
// yearly report.
const MaxReportSpan = MaxProgrammeSpan * 6

// utf8BOM is the byte order mark that tells Excel a CSV file is UTF-8.
const utf8BOM = "\ufeff"

// handleBroadcastReport answers GET /api/v1/reports/broadcast?area=&from=&to=&format=&bom=:
// per node and per area (commune, ward, village: the area a node is in),
// the occurrences scheduled in [from, to) and what became of them.
func (s *Server) handleBroadcastReport(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area", "from", "to", "format", "bom"); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	area := q.Get("area")
	if area == "" {
		area = userFrom(ctx).Area
	}
	if area == "" {
		// A whole-tree user's report is of the root, the province: its
		// total read as of no area at all.
		var err error
		if area, err = s.onlyRoot(ctx); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return loaxa.Errorf(loaxa.EInvalid, "format %q: use json (the default) or csv.", format)
	}
	// Excel reads a CSV file without a byte order mark in the PC's code
	// page: "Xã Lập Lễ" showed as "XÃ£ Láº­p Lá»…". The mark is asked for
	// (the console's download does), not sent by default: Go's
	// encoding/csv and Python's csv (utf-8) keep it as part of the first
	// header name, and scripts that look up "level" would miss it.
	var bom bool
	if v := q.Get("bom"); v != "" {
		var err error
		if bom, err = strconv.ParseBool(v); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "bom %q: write true to begin the CSV with a UTF-8 byte order mark (for Excel), or leave it out.", v)
		}
		if bom && format != "csv" {
			return loaxa.Errorf(loaxa.EInvalid, "bom=true is for format=csv; a JSON answer has no byte order mark.")
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
		from = to.AddDate(0, -1, 0)
	}
	if !from.Before(to) || to.Sub(from) > MaxReportSpan {
		return reportRangeError(from, to, q.Get("to") == "")
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: area})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	// A cluster plays into a cut speaker line as into a sound one and
	// reports it completed: the plays made while one of its faults that
	// keep a pole silent was open are counted apart (Silenced), from the
	// alarm history, which says when each fault was open.
	faults := map[string][]*loaxa.Alarm{}
	if s.AlarmService != nil {
		alarms, err := s.AlarmService.FindAlarmsOpenDuring(ctx, area, loaxa.SilencingFaults, from, now)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		for _, a := range alarms {
			faults[a.Node] = append(faults[a.Node], a)
		}
	}
	rep := loaxa.BroadcastReport{Area: area, From: from, To: to, Generated: now, Areas: []loaxa.AreaFigures{}, Nodes: []loaxa.NodeFigures{}}
	byArea := map[string]*loaxa.AreaFigures{}
	for _, n := range nodes {
		ds, err := s.DeliveryService.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: n.ID, From: from, To: to})
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		nf := loaxa.NodeFigures{Node: n.ID, Name: n.Name, Area: n.Area}
		af := byArea[n.Area]
		if af == nil {
			af = &loaxa.AreaFigures{Area: n.Area}
			if a, err := s.AreaService.FindAreaByID(ctx, n.Area); err == nil {
				af.Name = a.Name
			}
			byArea[n.Area] = af
		}
		af.Nodes++
		for _, d := range ds {
			if !n.AnswersFor(d) {
				// Not the node's to answer for: an alert to its area
				// while it waited for its code, or plays an older
				// controller planned from when the code was issued.
				continue
			}
			d.CheckSilence(now, loaxa.SilenceBound)
			nf.Add(d)
			af.Add(d)
			rep.Total.Add(d)
			if len(loaxa.PlayedIntoFault(d, faults[n.ID], now)) > 0 {
				nf.Silenced++
				af.Silenced++
				rep.Total.Silenced++
			}
		}
		rep.Nodes = append(rep.Nodes, nf)
	}
	for _, af := range byArea {
		rep.Areas = append(rep.Areas, *af)
	}
	slices.SortFunc(rep.Areas, func(a, b loaxa.AreaFigures) int { return strings.Compare(a.Area, b.Area) })
	if format != "csv" {
		s.writeJSON(w, r, http.StatusOK, rep)
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="broadcast-report.csv"`)
	if bom {
		if _, err := io.WriteString(w, utf8BOM); err != nil {
			return fmt.Errorf("report: write csv: %w", err)
		}
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"level", "id", "area", "name", "nodes", "scheduled", "completed", "preempted", "failed", "missed",
		"open", "failed_to_sound", "emergency", "minutes_planned", "minutes_played", "drill", "silenced"})
	row := func(level, id, area, name string, nodes int, f loaxa.BroadcastFigures) {
		cw.Write([]string{level, csvText(id), csvText(area), csvText(name), strconv.Itoa(nodes), strconv.Itoa(f.Scheduled), strconv.Itoa(f.Completed),
			strconv.Itoa(f.Preempted), strconv.Itoa(f.Failed), strconv.Itoa(f.Missed), strconv.Itoa(f.Open),
			strconv.Itoa(f.FailedToSound), strconv.Itoa(f.Emergency), minutes(f.PlannedMS), minutes(f.PlayedMS), strconv.Itoa(f.Drill), strconv.Itoa(f.Silenced)})
	}
	row("total", area, area, "", len(nodes), rep.Total)
	for _, a := range rep.Areas {
		row("area", a.Area, a.Area, a.Name, a.Nodes, a.BroadcastFigures)
	}
	for _, n := range rep.Nodes {
		row("node", n.Node, n.Area, n.Name, 1, n.BroadcastFigures)
	}
	cw.Flush()
	return cw.Error()
}

// onlyRoot returns the id of the area tree's root, or "" when the tree
// has several roots (or none): then no one area holds every node.
func (s *Server) onlyRoot(ctx context.Context) (string, error) {
	areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{})
	if err != nil {
		return "", fmt.Errorf("find the root area: %w", err)
	}
	root := ""
	for _, a := range areas {
		if a.Parent != "" {
			continue
		}
		if root != "" {
			return "", nil
		}
		root = a.ID
	}
	return root, nil
}

// csvText makes a text cell safe to open in a spreadsheet: one that
// begins with =, +, -, @, a tab or a carriage return would be run as a
// formula (CWE-1236: an area named =HYPERLINK(…) by one officer runs when
// another opens the report), so it gets a leading apostrophe, which
// spreadsheets show as text and do not display.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func minutes(ms int64) string { return strconv.FormatFloat(float64(ms)/60000, 'f', 2, 64) }

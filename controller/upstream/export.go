// Package upstream connects the controller to the provincial/central
// information-source system (hệ thống thông tin nguồn): a documented JSON
// export of what was broadcast and of the clusters, pushed on a schedule
// through a durable outbox and available on demand; and (in the HTTP
// layer) the inbound endpoint for that system's bulletins.
package upstream

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Format names the export's layout; docs/upstream.md describes it.
const Format = "loaxa.upstream/1"

// Export is one export document: the broadcast report of an area over
// [From, To), per commune and cluster, the bulletins played, and the
// cluster inventory with its status when Generated.
type Export struct {
	Format    string    `json:"format"`
	System    string    `json:"system"`
	Area      string    `json:"area"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Generated time.Time `json:"generated"`
	// Total counts every delivery of the period (loaxa.BroadcastFigures).
	Total     loaxa.BroadcastFigures `json:"total"`
	Communes  []Commune              `json:"communes"`
	Bulletins []Bulletin             `json:"bulletins"`
}

// Commune is one area holding clusters (a commune, ward or village).
type Commune struct {
	Area      string                 `json:"area"`
	Name      string                 `json:"name"`
	Broadcast loaxa.BroadcastFigures `json:"broadcast"`
	Clusters  []Cluster              `json:"clusters"`
}

// Cluster is one node (cụm loa) with its status and figures.
type Cluster struct {
	Node      string                 `json:"node"`
	Name      string                 `json:"name"`
	Lat       float64                `json:"lat"`
	Lon       float64                `json:"lon"`
	Status    string                 `json:"status"` // online, offline, never
	LastSeen  time.Time              `json:"last_seen,omitzero"`
	Agent     string                 `json:"agent,omitempty"`
	Broadcast loaxa.BroadcastFigures `json:"broadcast"`
}

// Bulletin is an announcement with deliveries in the period.
type Bulletin struct {
	Announcement string            `json:"announcement"`
	Title        string            `json:"title"`
	Priority     protocol.Priority `json:"priority"`
	// Drill marks an exercise (an emergency drill, a drill live call),
	// never to be read as a real alert.
	Drill bool `json:"drill,omitempty"`
	// Clusters is how many nodes it was scheduled on, Completed how many
	// plays ended completed; PlayedMS sums the time heard.
	Scheduled int   `json:"scheduled"`
	Completed int   `json:"completed"`
	PlayedMS  int64 `json:"played_ms"`
}

// Source is what Build reads.
type Source struct {
	Areas         loaxa.AreaService
	Nodes         loaxa.NodeService
	Deliveries    loaxa.DeliveryService
	Announcements loaxa.AnnouncementService
	// System identifies this controller to the upstream system.
	System string
}

// Build makes the export of area ("" = everything) over [from, to).
func (s *Source) Build(ctx context.Context, area string, from, to, now time.Time) (*Export, error) {
	nodes, err := s.Nodes.FindNodes(ctx, loaxa.NodeFilter{Within: area})
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	x := &Export{Format: Format, System: s.System, Area: area, From: from.UTC(), To: to.UTC(), Generated: now.UTC(),
		Communes: []Commune{}, Bulletins: []Bulletin{}}
	communes := map[string]*Commune{}
	bulletins := map[string]*Bulletin{}
	for _, n := range nodes {
		ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: n.ID, From: from, To: to})
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		c := communes[n.Area]
		if c == nil {
			c = &Commune{Area: n.Area}
			if a, err := s.Areas.FindAreaByID(ctx, n.Area); err == nil {
				c.Name = a.Name
			}
			communes[n.Area] = c
		}
		cl := Cluster{Node: n.ID, Name: n.Name, Lat: n.Lat, Lon: n.Lon, Status: n.Status.State, LastSeen: n.Status.LastSeen, Agent: n.Status.Agent}
		for _, d := range ds {
			if !n.AnswersFor(d) {
				// Not the node's to answer for: an alert to its area
				// while it waited for its code, or plays an older
				// controller planned from when the code was issued.
				continue
			}
			d.CheckSilence(now, loaxa.SilenceBound)
			cl.Broadcast.Add(d)
			c.Broadcast.Add(d)
			x.Total.Add(d)
			b := bulletins[d.Announcement]
			if b == nil {
				b = &Bulletin{Announcement: d.Announcement, Priority: d.Priority, Drill: d.Drill}
				if a, err := s.Announcements.FindAnnouncementByID(ctx, d.Announcement); err == nil {
					b.Title = a.Title
					b.Priority = a.Priority
				}
				bulletins[d.Announcement] = b
			}
			b.Scheduled++
			if d.State == loaxa.DeliveryCompleted {
				b.Completed++
			}
			b.PlayedMS += d.PlayedMS
		}
		c.Clusters = append(c.Clusters, cl)
	}
	for _, c := range communes {
		x.Communes = append(x.Communes, *c)
	}
	slices.SortFunc(x.Communes, func(a, b Commune) int { return cmp.Compare(a.Area, b.Area) })
	for _, b := range bulletins {
		x.Bulletins = append(x.Bulletins, *b)
	}
	slices.SortFunc(x.Bulletins, func(a, b Bulletin) int { return cmp.Compare(a.Announcement, b.Announcement) })
	return x, nil
}

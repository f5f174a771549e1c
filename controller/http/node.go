package http

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// DefaultBrokerPort is the MQTT port written into credentials documents
// when no broker URL is configured.
const DefaultBrokerPort = "1883"

// nodeRequest is the body of POST /api/v1/nodes.
type nodeRequest struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Area string  `json:"area"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	// Credentials is how the board gets its secret: "document" (default,
	// in this answer) or "code" (a one-time enrolment code).
	Credentials string `json:"credentials"`
}

// nodeCreated answers POST /api/v1/nodes: the node and, this once, its
// credentials document or its enrolment code.
type nodeCreated struct {
	Node        *loaxa.Node           `json:"node"`
	Credentials *protocol.Credentials `json:"credentials,omitempty"`
	Enrolment   *enrolmentCode        `json:"enrolment,omitempty"`
}

// nodesResponse answers GET /api/v1/nodes.
type nodesResponse struct {
	Nodes []*loaxa.Node `json:"nodes"`
}

// handleListNodes answers GET /api/v1/nodes?area=&state=.
func (s *Server) handleListNodes(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area", "state"); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	f := loaxa.NodeFilter{Within: userFrom(ctx).Area, State: q.Get("state")}
	// never and awaiting_enrolment are told apart as area health and
	// loaxa_nodes count them: a pole waiting for its enrolment code (no
	// EnrolledAt) is not a board that never came up. Both are in the
	// store's never.
	var enrolled func(*loaxa.Node) bool
	switch f.State {
	case "", loaxa.NodeOnline, loaxa.NodeStale, loaxa.NodeOffline:
	case loaxa.NodeNever:
		enrolled = func(n *loaxa.Node) bool { return !n.EnrolledAt.IsZero() }
	case loaxa.MonitorAwaitingEnrolment:
		f.State = loaxa.NodeNever
		enrolled = func(n *loaxa.Node) bool { return n.EnrolledAt.IsZero() }
	default:
		return loaxa.Errorf(loaxa.EInvalid, "state %q is not a node state; use %s, %s, %s, %s or %s.",
			f.State, loaxa.NodeOnline, loaxa.NodeStale, loaxa.NodeOffline, loaxa.NodeNever, loaxa.MonitorAwaitingEnrolment)
	}
	if area := q.Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
		f.Within = area
	}
	nodes, err := s.NodeService.FindNodes(ctx, f)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	if enrolled != nil {
		nodes = slices.DeleteFunc(nodes, func(n *loaxa.Node) bool { return !enrolled(n) })
	}
	s.writeJSON(w, r, http.StatusOK, nodesResponse{Nodes: nonNil(nodes)})
	return nil
}

// handleGetNode answers GET /api/v1/nodes/{id}.
func (s *Server) handleGetNode(w http.ResponseWriter, r *http.Request) error {
	n, err := s.findNode(r)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, n)
	return nil
}

// handleGetDesired answers GET /api/v1/nodes/{id}/desired: the desired
// state last compiled for the node.
func (s *Server) handleGetDesired(w http.ResponseWriter, r *http.Request) error {
	n, err := s.findNode(r)
	if err != nil {
		return err
	}
	d, err := s.DesiredService.FindDesired(r.Context(), n.ID)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound,
			"No desired state has been compiled for node %q yet; the scheduler compiles one shortly after a node is enrolled.", n.ID)
	} else if err != nil {
		return fmt.Errorf("get desired state of %s: %w", n.ID, err)
	}
	s.writeJSON(w, r, http.StatusOK, d)
	return nil
}

// findNode returns the node named by the path, if the user may read it.
func (s *Server) findNode(r *http.Request) (*loaxa.Node, error) {
	ctx, id := r.Context(), r.PathValue("id")
	n, err := s.NodeService.FindNodeByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.ENotFound, "There is no node %q; list nodes with GET /api/v1/nodes.", id)
	} else if err != nil {
		return nil, fmt.Errorf("get node %s: %w", id, err)
	}
	if err := s.authorizeOn(ctx, loaxa.ActionRead, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
		return nil, err
	}
	return n, nil
}

// nodePatch is the body of PATCH /api/v1/nodes/{id}: what to correct of
// an enrolled node; fields left out stay as they are.
type nodePatch struct {
	Name *string  `json:"name"`
	Lat  *float64 `json:"lat"`
	Lon  *float64 `json:"lon"`
	Area *string  `json:"area"`
}

// nodeUpdated answers PATCH /api/v1/nodes/{id}: the node, and what the
// officer still has to do, if anything (an external broker's files).
type nodeUpdated struct {
	Node   *loaxa.Node `json:"node"`
	Notice string      `json:"notice,omitempty"`
}

// handleUpdateNode answers PATCH /api/v1/nodes/{id}: corrects a node's
// name or position, or moves it to another area. A move needs the right
// to manage nodes in both areas: a commune's technician can move a
// cluster neither out of nor into another commune. It carries what
// depends on the area (NodeMoved, the scheduler): a cluster whose broker
// grant or desired state kept its old area would miss its new commune's
// alerts and sound its old one's.
func (s *Server) handleUpdateNode(w http.ResponseWriter, r *http.Request) error {
	n, err := s.findNode(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.authorizeOn(ctx, loaxa.ActionManageNodes, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
		return err
	}
	var req nodePatch
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Name == nil && req.Lat == nil && req.Lon == nil && req.Area == nil {
		return loaxa.Errorf(loaxa.EInvalid, "Give at least one of name, lat and lon (the position), or area (to move the cluster to another area).")
	}
	p := loaxa.NodePlace{Name: n.Name, Lat: n.Lat, Lon: n.Lon, Area: n.Area, From: n.Area}
	if req.Name != nil {
		if p.Name, err = cleanText("name", *req.Name, true); err != nil {
			return err
		}
	}
	if req.Lat != nil {
		p.Lat = *req.Lat
	}
	if req.Lon != nil {
		p.Lon = *req.Lon
	}
	if err := checkPosition("", p.Lat, p.Lon); err != nil {
		return err
	}
	if req.Area != nil && *req.Area != n.Area {
		if _, err := s.requireArea(ctx, "area", *req.Area); err != nil {
			return err
		}
		if err := s.authorizeOn(ctx, loaxa.ActionManageNodes, *req.Area, fmt.Sprintf("Area %q", *req.Area)); err != nil {
			return err
		}
		p.Area = *req.Area
	}
	before, after, err := s.NodeService.UpdateNodePlace(ctx, n.ID, p)
	switch loaxa.ErrorCode(err) {
	case loaxa.ENotFound:
		return loaxa.Errorf(loaxa.ENotFound, "There is no node %q; list nodes with GET /api/v1/nodes.", n.ID)
	case loaxa.EConflict:
		return loaxa.Errorf(loaxa.EConflict, "%s", loaxa.ErrorMessage(err))
	}
	if err != nil {
		return fmt.Errorf("update node %s: %w", n.ID, err)
	}
	detail := nodeChanges(before, after)
	out := nodeUpdated{Node: after}
	moved := before.Area != after.Area
	if moved {
		s.auditIn(r, auditNodeUpdate, after.ID, []string{before.Area, after.Area}, detail)
		if s.NodeMoved != nil {
			// Stored: what follows the move must happen even if the
			// officer's connection drops now.
			s.NodeMoved(context.WithoutCancel(ctx), after.ID, before.Area, after.Area)
		}
		if s.BrokerFiles != nil {
			// Mosquitto reads its ACL from the exported file: until it is
			// exported again and reloaded, it delivers the node nothing of
			// its new area's topics (and grants the subscription, so the
			// node cannot report the area unheard: this is the reminder).
			out.Notice = fmt.Sprintf("The cluster now belongs to area %q. The external MQTT broker still lets it hear only area %q: export the broker files again (GET /api/v1/broker/mosquitto), install them and reload Mosquitto (SIGHUP), or the cluster misses its new area's alerts.", after.Area, before.Area)
		}
	} else {
		s.audit(r, auditNodeUpdate, after.ID, after.Area, detail)
	}
	s.logger().Info("node updated", "node", after.ID, "changes", detail, "by", userFrom(ctx).Username)
	s.changed()
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// nodeChanges says what changed from before to after, for the audit log,
// as the key_before=old key=new pairs the console words as one change.
func nodeChanges(before, after *loaxa.Node) string {
	var parts []string
	if before.Name != after.Name {
		parts = append(parts, fmt.Sprintf("name_before=%q name=%q", before.Name, after.Name))
	}
	if before.Lat != after.Lat || before.Lon != after.Lon {
		parts = append(parts, fmt.Sprintf("position_before=%s position=%s", position(before), position(after)))
	}
	if before.Area != after.Area {
		parts = append(parts, fmt.Sprintf("area_before=%s area=%s", before.Area, after.Area))
	}
	if len(parts) == 0 {
		return "unchanged=true"
	}
	return strings.Join(parts, " ")
}

// position writes n's position as "lat,lon" in decimal degrees.
func position(n *loaxa.Node) string {
	return strconv.FormatFloat(n.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(n.Lon, 'f', -1, 64)
}

// checkPosition checks a position as POST /nodes does; field prefixes the
// message.
func checkPosition(field string, lat, lon float64) error {
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 || math.IsNaN(lat) || math.IsNaN(lon) {
		return loaxa.Errorf(loaxa.EInvalid,
			"%slat %v, lon %v is not a position; give decimal degrees, lat within ±90 and lon within ±180 (e.g. 20.716, 106.552).", field, lat, lon)
	}
	return nil
}

// handleCreateNode answers POST /api/v1/nodes: enrols a node and shows its
// credentials document (or an enrolment code) once. Only hashes of the
// secret and the code are stored.
func (s *Server) handleCreateNode(w http.ResponseWriter, r *http.Request) error {
	var req nodeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	mode, err := credentialsMode(req.Credentials)
	if err != nil {
		return err
	}
	n, err := s.checkNodeRequest(r.Context(), "", req)
	if err != nil {
		return err
	}
	out, err := s.createNodes(r, []*loaxa.Node{n}, mode)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, out[0])
	return nil
}

// checkNodeRequest turns a node request into a node, if it is valid and
// the user may enrol nodes in its area; field prefixes error messages.
func (s *Server) checkNodeRequest(ctx context.Context, field string, req nodeRequest) (*loaxa.Node, error) {
	if err := checkID(field+"id", req.ID); err != nil {
		return nil, err
	}
	name, err := cleanText(field+"name", req.Name, true)
	if err != nil {
		return nil, err
	}
	if err := checkPosition(field, req.Lat, req.Lon); err != nil {
		return nil, err
	}
	if _, err := s.requireArea(ctx, field+"area", req.Area); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, loaxa.ActionManageNodes, req.Area); err != nil {
		return nil, err
	}
	return &loaxa.Node{ID: req.ID, Name: name, Area: req.Area, Lat: req.Lat, Lon: req.Lon, CreatedAt: s.now(),
		Status: loaxa.NodeStatus{State: loaxa.NodeNever}}, nil
}

// createNodes stores nodes in one transaction, each with a fresh secret
// (mode "document") or none and a fresh enrolment code (mode "code"), and
// returns what to show this once.
func (s *Server) createNodes(r *http.Request, nodes []*loaxa.Node, mode string) ([]nodeCreated, error) {
	ctx := r.Context()
	out := make([]nodeCreated, len(nodes))
	secrets := make([]string, len(nodes))
	for i, n := range nodes {
		if mode == modeDocument {
			var sec loaxa.NodeSecret
			secrets[i], sec = loaxa.NewNodeSecret()
			n.SecretHash, n.BrokerHash = sec.Hash, sec.BrokerHash
			// Check before storing: a document the node cannot use is a
			// setup fault (no signing key, a bad public URL), and no node
			// should exist whose secret nobody ever saw.
			creds, err := s.credentials(r, n, secrets[i])
			if err != nil {
				return nil, err
			}
			out[i].Credentials = creds
		}
		out[i].Node = n
	}
	if err := s.NodeService.CreateNodes(ctx, nodes); loaxa.ErrorCode(err) == loaxa.EConflict {
		return nil, &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonNodeExists,
			Message: strings.TrimSuffix(loaxa.ErrorMessage(err), ": choose another id.") + "; choose another id."}
	} else if err != nil {
		return nil, fmt.Errorf("create nodes: %w", err)
	}
	for i, n := range nodes {
		if mode == modeCode {
			e, err := s.newEnrolment(r, n)
			if err != nil {
				return nil, err
			}
			out[i].Enrolment = e
		}
		s.audit(r, auditNodeCreate, n.ID, n.Area, "credentials="+mode)
		s.logger().Info("node enrolled", "node", n.ID, "area", n.Area, "credentials", mode, "by", userFrom(ctx).Username)
	}
	s.changed()
	return out, nil
}

// credentials builds node n's credentials document with its secret.
func (s *Server) credentials(r *http.Request, n *loaxa.Node, secret string) (*protocol.Credentials, error) {
	ctx := r.Context()
	chain, err := s.AreaService.AreaChain(ctx, n.Area)
	if err != nil {
		return nil, fmt.Errorf("credentials of %s: area chain: %w", n.ID, err)
	}
	keys, err := s.trustedKeys(ctx)
	if err != nil {
		return nil, err
	}
	controller := s.controllerURL(r)
	creds := &protocol.Credentials{
		Node:         n.ID,
		Area:         n.Area,
		Areas:        chain,
		Controller:   controller,
		Broker:       s.brokerURL(controller),
		Username:     n.ID,
		Secret:       secret,
		TopicPrefix:  s.topicPrefix(),
		Keys:         keys,
		ControllerCA: s.ControllerCA,
	}
	if err := creds.Validate(); err != nil {
		return nil, fmt.Errorf("credentials of %s: the document would be invalid (check the public and broker URLs and keys): %w", n.ID, err)
	}
	return creds, nil
}

// controllerURL is the base URL nodes reach the controller by: PublicURL,
// or the scheme and host this request came in on.
func (s *Server) controllerURL(r *http.Request) string {
	if s.PublicURL != "" {
		return strings.TrimRight(s.PublicURL, "/")
	}
	u := url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return u.String()
}

// brokerURL is the broker URL for credentials: BrokerURL with "{host}"
// filled in, or tcp://<controller host>:1883.
func (s *Server) brokerURL(controller string) string {
	host := ""
	if u, err := url.Parse(controller); err == nil {
		host = u.Hostname()
	}
	if s.BrokerURL == "" {
		return "tcp://" + net.JoinHostPort(host, DefaultBrokerPort)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal inside a URL
	}
	return strings.ReplaceAll(s.BrokerURL, "{host}", host)
}

func (s *Server) topicPrefix() string {
	if s.TopicPrefix == "" {
		return protocol.DefaultPrefix
	}
	return s.TopicPrefix
}

// Package cap reads CAP 1.2 alerts (OASIS Common Alerting Protocol,
// http://docs.oasis-open.org/emergency/cap/v1.2/) and decides what loaxa
// does with one: play it as an emergency or a drill, cancel an earlier
// one, log it, or wait for an operator's approval. It has no I/O: the HTTP
// layer stores alerts and sends emergencies.
package cap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Namespace is the XML namespace of CAP 1.2.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// MaxSize bounds an alert document.
const MaxSize = 1 << 20

// Alert is a CAP 1.2 alert: the fields loaxa reads.
type Alert struct {
	XMLName    xml.Name `xml:"alert"`
	Identifier string   `xml:"identifier"`
	Sender     string   `xml:"sender"`
	Sent       string   `xml:"sent"`
	Status     string   `xml:"status"`
	MsgType    string   `xml:"msgType"`
	Scope      string   `xml:"scope"`
	// Restriction says who a Restricted alert is for; Addresses, the
	// recipients of a Private one.
	Restriction string `xml:"restriction"`
	Addresses   string `xml:"addresses"`
	References  string `xml:"references"`
	Infos       []Info `xml:"info"`

	sent time.Time
}

// Info is one info block of an alert, in one language.
type Info struct {
	Language    string   `xml:"language"`
	Categories  []string `xml:"category"`
	Event       string   `xml:"event"`
	Urgency     string   `xml:"urgency"`
	Severity    string   `xml:"severity"`
	Certainty   string   `xml:"certainty"`
	Expires     string   `xml:"expires"`
	Headline    string   `xml:"headline"`
	Description string   `xml:"description"`
	Instruction string   `xml:"instruction"`
	Areas       []Area   `xml:"area"`

	expires  time.Time
	position int // among the alert's info elements, from 1
}

// Area is a CAP area: a description and any of polygons, circles and
// geocodes.
type Area struct {
	Desc     string      `xml:"areaDesc"`
	Polygons []string    `xml:"polygon"`
	Circles  []string    `xml:"circle"`
	Geocodes []ValueName `xml:"geocode"`
}

// ValueName is a CAP geocode.
type ValueName struct {
	Name  string `xml:"valueName"`
	Value string `xml:"value"`
}

// Values allowed by CAP 1.2.
var (
	statuses  = []string{"Actual", "Exercise", "System", "Test", "Draft"}
	msgTypes  = []string{"Alert", "Update", "Cancel", "Ack", "Error"}
	scopes    = []string{"Public", "Restricted", "Private"}
	urgencies = []string{"Immediate", "Expected", "Future", "Past", "Unknown"}
	severity  = []string{"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
	certainty = []string{"Observed", "Likely", "Possible", "Unlikely", "Unknown", "Very Likely"}
	categorys = []string{"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"}
)

// ErrInvalid wraps every reason an alert is refused.
var ErrInvalid = errors.New("invalid CAP 1.2 alert")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads and validates one CAP 1.2 alert: the namespace, the fields
// the standard requires with their allowed values, times with a zone, and
// polygons and circles that parse. The error names what is wrong.
func Parse(r io.Reader) (*Alert, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read CAP alert: %w", err)
	}
	if len(raw) > MaxSize {
		return nil, invalid("larger than %d bytes", MaxSize)
	}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	// DTDs and entities are not part of CAP; encoding/xml does not expand
	// external entities, and a strict decoder refuses malformed XML.
	dec.Strict = true
	var a Alert
	if err := dec.Decode(&a); err != nil {
		return nil, invalid("not well-formed XML with an <alert> root: %v", err)
	}
	if a.XMLName.Space != Namespace {
		return nil, invalid("root element is in namespace %q, want %q", a.XMLName.Space, Namespace)
	}
	// Whitespace around a value, as an editor that indents the document
	// leaves it: the schema collapses it in a language (xs:language); an
	// identifier or sender with it would be another key than the one its
	// Update or Cancel references.
	a.Identifier, a.Sender = strings.TrimSpace(a.Identifier), strings.TrimSpace(a.Sender)
	for i := range a.Infos {
		a.Infos[i].Language = strings.TrimSpace(a.Infos[i].Language)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

func oneOf(field, v string, allowed []string) error {
	for _, s := range allowed {
		if v == s {
			return nil
		}
	}
	if v == "" {
		return invalid("%s is required (one of %s)", field, strings.Join(allowed, ", "))
	}
	return invalid("%s %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

// badIDChars may not appear in identifiers and senders (CAP 1.2, 3.2.1).
const badIDChars = " ,<&"

func (a *Alert) validate() error {
	for _, f := range []struct{ name, v string }{{"identifier", a.Identifier}, {"sender", a.Sender}} {
		if strings.TrimSpace(f.v) == "" {
			return invalid("%s is required", f.name)
		}
		if strings.ContainsAny(f.v, badIDChars) || strings.ContainsFunc(f.v, unicode.IsSpace) {
			return invalid("%s %q contains a space, comma, < or &", f.name, f.v)
		}
	}
	var err error
	if a.sent, err = ParseTime(a.Sent); err != nil {
		return invalid("sent: %v", err)
	}
	for _, c := range []struct {
		field, v string
		allowed  []string
	}{{"status", a.Status, statuses}, {"msgType", a.MsgType, msgTypes}, {"scope", a.Scope, scopes}} {
		if err := oneOf(c.field, c.v, c.allowed); err != nil {
			return err
		}
	}
	if (a.MsgType == "Update" || a.MsgType == "Cancel") && len(a.Refs()) == 0 {
		return invalid("msgType %s needs references (sender,identifier,sent of the alerts it changes)", a.MsgType)
	}
	for _, ref := range strings.Fields(a.References) {
		if strings.Count(ref, ",") != 2 {
			return invalid("reference %q: want sender,identifier,sent", ref)
		}
	}
	for i := range a.Infos {
		if err := a.Infos[i].validate(i); err != nil {
			return err
		}
	}
	return nil
}

func (in *Info) validate(i int) error {
	in.position = i + 1
	if len(in.Categories) == 0 {
		return invalid("info %d: category is required", i+1)
	}
	for _, c := range in.Categories {
		if err := oneOf(fmt.Sprintf("info %d: category", i+1), c, categorys); err != nil {
			return err
		}
	}
	if strings.TrimSpace(in.Event) == "" {
		return invalid("info %d: event is required", i+1)
	}
	for _, c := range []struct {
		field, v string
		allowed  []string
	}{{"urgency", in.Urgency, urgencies}, {"severity", in.Severity, severity}, {"certainty", in.Certainty, certainty}} {
		if err := oneOf(fmt.Sprintf("info %d: %s", i+1, c.field), c.v, c.allowed); err != nil {
			return err
		}
	}
	if in.Expires != "" {
		t, err := ParseTime(in.Expires)
		if err != nil {
			return invalid("info %d: expires: %v", i+1, err)
		}
		in.expires = t
	}
	for j, ar := range in.Areas {
		if strings.TrimSpace(ar.Desc) == "" {
			return invalid("info %d area %d: areaDesc is required", i+1, j+1)
		}
		for _, p := range ar.Polygons {
			if _, err := ParsePolygon(p); err != nil {
				return invalid("info %d area %d: %v", i+1, j+1, err)
			}
		}
		for _, c := range ar.Circles {
			if _, err := ParseCircle(c); err != nil {
				return invalid("info %d area %d: %v", i+1, j+1, err)
			}
		}
	}
	return nil
}

// ParseTime reads a CAP dateTime: RFC 3339 with an explicit zone ("Z" is
// not allowed by CAP but accepted, as senders write it).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date and time with a zone, e.g. 2025-09-06T08:00:00+07:00", s)
	}
	return t, nil
}

// SentAt returns the parsed sent time.
func (a *Alert) SentAt() time.Time { return a.sent }

// ExpiresAt returns the parsed expiry of an info block (zero: none given).
func (in *Info) ExpiresAt() time.Time { return in.expires }

// Position returns the block's place among the alert's info elements,
// from 1, as the document has them (0 for a block not read by Parse).
func (in *Info) Position() int { return in.position }

// Label names the block in notes and errors: its place, headline and
// event, as BlockLabel does.
func (in *Info) Label() string {
	return BlockLabel(in.position, strings.TrimSpace(in.Headline), in.Event)
}

// BlockLabel names an info block in notes: `info block 2 "headline"
// (event)`. The place tells apart blocks that share a headline, as the
// blocks of one warning for several areas often do; 0 leaves it out.
func BlockLabel(position int, headline, event string) string {
	if position == 0 {
		return fmt.Sprintf("info block %q (%s)", headline, event)
	}
	return fmt.Sprintf("info block %d %q (%s)", position, headline, event)
}

// Key identifies an alert for de-duplication: sender and identifier.
func (a *Alert) Key() string { return a.Sender + "," + a.Identifier }

// Refs returns the keys (sender,identifier) of the alerts a references.
func (a *Alert) Refs() []string {
	var out []string
	for _, ref := range strings.Fields(a.References) {
		parts := strings.SplitN(ref, ",", 3)
		if len(parts) == 3 && parts[0] != "" && parts[1] != "" {
			out = append(out, parts[0]+","+parts[1])
		}
	}
	return out
}

// Info returns the info block to play: the Vietnamese one (language vi or
// vi-*) if there is one, else the first; nil if the alert has none.
func (a *Alert) Info() *Info {
	for i := range a.Infos {
		l := strings.ToLower(a.Infos[i].Language)
		if l == "vi" || strings.HasPrefix(l, "vi-") {
			return &a.Infos[i]
		}
	}
	if len(a.Infos) > 0 {
		return &a.Infos[0]
	}
	return nil
}

// Blocks returns the info blocks of the language Info plays, in order:
// CAP 1.2 treats each set of blocks of one language as a sequence, each
// block for its own areas (a later one may expand an earlier one where
// their areas overlap, not override it). nil if the alert has none.
func (a *Alert) Blocks() []*Info {
	first := a.Info()
	if first == nil {
		return nil
	}
	var out []*Info
	for i := range a.Infos {
		if strings.EqualFold(a.Infos[i].Language, first.Language) {
			out = append(out, &a.Infos[i])
		}
	}
	return out
}

// Message is the text to read out: headline, description and instruction.
func (in *Info) Message() string {
	var parts []string
	for _, s := range []string{in.Headline, in.Description, in.Instruction} {
		if s = strings.Join(strings.Fields(s), " "); s != "" {
			if !strings.ContainsAny(s[len(s)-1:], ".!?") {
				s += "."
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return in.Event + "."
	}
	return strings.Join(parts, " ")
}

// Point is a WGS 84 position.
type Point struct{ Lat, Lon float64 }

func parsePoint(s string) (Point, error) {
	lat, lon, ok := strings.Cut(strings.TrimSpace(s), ",")
	if !ok {
		return Point{}, fmt.Errorf("point %q: want lat,lon", s)
	}
	var p Point
	var err1, err2 error
	p.Lat, err1 = strconv.ParseFloat(strings.TrimSpace(lat), 64)
	p.Lon, err2 = strconv.ParseFloat(strings.TrimSpace(lon), 64)
	if err1 != nil || err2 != nil || math.Abs(p.Lat) > 90 || math.Abs(p.Lon) > 180 || math.IsNaN(p.Lat) || math.IsNaN(p.Lon) {
		return Point{}, fmt.Errorf("point %q: want lat,lon in degrees", s)
	}
	return p, nil
}

// ParsePolygon reads a CAP polygon: at least four lat,lon pairs separated
// by spaces, the first equal to the last.
func ParsePolygon(s string) ([]Point, error) {
	var ps []Point
	for _, f := range strings.Fields(s) {
		p, err := parsePoint(f)
		if err != nil {
			return nil, fmt.Errorf("polygon: %v", err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 4 || ps[0] != ps[len(ps)-1] {
		return nil, fmt.Errorf("polygon %q: want at least 4 points, the first repeated at the end", s)
	}
	return ps, nil
}

// Circle is a CAP circle: a centre and a radius in kilometres.
type Circle struct {
	Centre   Point
	RadiusKM float64
}

// ParseCircle reads "lat,lon radius".
func ParseCircle(s string) (Circle, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Circle{}, fmt.Errorf("circle %q: want \"lat,lon radius-km\"", s)
	}
	p, err := parsePoint(f[0])
	if err != nil {
		return Circle{}, fmt.Errorf("circle: %v", err)
	}
	r, err := strconv.ParseFloat(f[1], 64)
	if err != nil || r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return Circle{}, fmt.Errorf("circle %q: radius must be kilometres ≥ 0", s)
	}
	return Circle{Centre: p, RadiusKM: r}, nil
}

// Contains reports whether the polygon ps holds p (ray casting; planar,
// which is exact enough at the size of a province).
func Contains(ps []Point, p Point) bool {
	in := false
	for i, j := 0, len(ps)-1; i < len(ps); j, i = i, i+1 {
		a, b := ps[i], ps[j]
		if (a.Lat > p.Lat) != (b.Lat > p.Lat) &&
			p.Lon < (b.Lon-a.Lon)*(p.Lat-a.Lat)/(b.Lat-a.Lat)+a.Lon {
			in = !in
		}
	}
	return in
}

// Holds reports whether p lies within the circle (great-circle distance).
func (c Circle) Holds(p Point) bool {
	const earthKM = 6371.0
	rad := math.Pi / 180
	dLat, dLon := (p.Lat-c.Centre.Lat)*rad, (p.Lon-c.Centre.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(c.Centre.Lat*rad)*math.Cos(p.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2*earthKM*math.Asin(math.Min(1, math.Sqrt(h))) <= c.RadiusKM
}

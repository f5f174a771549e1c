package cap

import (
	"os"
	"strings"
	"testing"
	"time"
)

func sample(t testing.TB) []byte {
	raw, err := os.ReadFile("testdata/actual.xml")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// variant changes the sample by replacing old with new.
func variant(t testing.TB, pairs ...string) *Alert {
	t.Helper()
	s := string(sample(t))
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("sample has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	a, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parse variant: %v", err)
	}
	return a
}

func TestParseSample(t *testing.T) {
	a := variant(t)
	if a.Key() != "nchmf.gov.vn,NCHMF-2025-0906-01" || a.SentAt().IsZero() {
		t.Errorf("key %q sent %v", a.Key(), a.SentAt())
	}
	in := a.Info()
	if in.Language != "vi-VN" {
		t.Fatalf("played info in %q, want the vi-VN block", in.Language)
	}
	if got, want := in.Message(), "Bão số 5 đổ bộ vào Hải Phòng. Gió mạnh cấp 12, giật cấp 15. Bà con không ra khỏi nhà."; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if in.ExpiresAt().IsZero() {
		t.Error("expires not read")
	}
}

// TestParseIndented: a document an editor indented has whitespace around
// its values. Around a language (xs:language) the schema drops it, so the
// Vietnamese block is still the one read out, not the English one; around
// an identifier or sender it would make another key than the one an
// Update or Cancel references.
func TestParseIndented(t *testing.T) {
	a := variant(t,
		"<language>vi-VN</language>", "<language>\n      vi-VN\n    </language>",
		"<identifier>NCHMF-2025-0906-01</identifier>", "<identifier>\n    NCHMF-2025-0906-01\n  </identifier>",
		"<sender>nchmf.gov.vn</sender>", "<sender> nchmf.gov.vn\t</sender>")
	if in := a.Info(); in.Language != "vi-VN" {
		t.Errorf("read out the %q block (%q), want the vi-VN one", in.Language, in.Message())
	}
	if a.Key() != "nchmf.gov.vn,NCHMF-2025-0906-01" {
		t.Errorf("key %q, want the one without the indentation", a.Key())
	}
}

func TestParseRefuses(t *testing.T) {
	s := string(sample(t))
	for name, doc := range map[string]string{
		"not xml":                   "bão",
		"other namespace":           strings.Replace(s, "cap:1.2", "cap:1.1", 1),
		"no identifier":             strings.Replace(s, "<identifier>NCHMF-2025-0906-01</identifier>", "", 1),
		"space in sender":           strings.Replace(s, "nchmf.gov.vn", "nchmf gov", 1),
		"tab in identifier":         strings.Replace(s, "NCHMF-2025-0906-01", "NCHMF-2025\t0906-01", 1),
		"sent without zone":         strings.Replace(s, "2025-09-06T07:00:00+07:00", "2025-09-06T07:00:00", 1),
		"bad status":                strings.Replace(s, "<status>Actual", "<status>Real", 1),
		"no msgType":                strings.Replace(s, "<msgType>Alert</msgType>", "", 1),
		"update without references": strings.Replace(s, "<msgType>Alert", "<msgType>Update", 1),
		"bad reference":             strings.Replace(s, "<scope>Public</scope>", "<scope>Public</scope><references>only-one</references>", 1),
		"no category":               strings.Replace(s, "<category>Met</category>", "", 1),
		"bad urgency":               strings.Replace(s, "<urgency>Immediate", "<urgency>Now", 1),
		"no areaDesc":               strings.Replace(s, "<areaDesc>Huyện Tiên Lãng</areaDesc>", "", 1),
		"open polygon":              strings.Replace(s, "20.80,106.60 20.90,106.60</polygon>", "20.80,106.60</polygon>", 1),
		"bad circle":                strings.Replace(s, "20.70,106.55 3", "20.70,106.55", 1),
		"bad expires":               strings.Replace(s, "2025-09-06T19:00:00+07:00", "tonight", 1),
		"trailing garbage?":         strings.Replace(s, "<alert ", "<alert><alert ", 1),
	} {
		if _, err := Parse(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "invalid CAP 1.2 alert") {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestDecide: each kind of alert has exactly its effect.
func TestDecide(t *testing.T) {
	now := time.Date(2025, 9, 6, 8, 0, 0, 0, time.FixedZone("+07", 7*3600))
	never := func(string) bool { return false }
	all := func(string) bool { return true }
	ref := "<scope>Public</scope><references>nchmf.gov.vn,NCHMF-2025-0906-00,2025-09-06T06:00:00+07:00</references>"
	for _, c := range []struct {
		name   string
		a      *Alert
		seen   func(string) bool
		auto   func(string) bool
		want   Action
		cancel int
	}{
		{"actual", variant(t), never, all, ActionPlay, 0},
		{"exercise", variant(t, "<status>Actual", "<status>Exercise"), never, all, ActionDrill, 0},
		{"test", variant(t, "<status>Actual", "<status>Test"), never, all, ActionLog, 0},
		{"draft", variant(t, "<status>Actual", "<status>Draft"), never, all, ActionLog, 0},
		{"system", variant(t, "<status>Actual", "<status>System"), never, all, ActionLog, 0},
		{"update", variant(t, "<msgType>Alert", "<msgType>Update", "<scope>Public</scope>", ref), never, all, ActionPlay, 1},
		{"cancel", variant(t, "<msgType>Alert", "<msgType>Cancel", "<scope>Public</scope>", ref), never, all, ActionCancel, 1},
		{"ack", variant(t, "<msgType>Alert", "<msgType>Ack"), never, all, ActionLog, 0},
		{"expired", variant(t, "2025-09-06T19:00:00+07:00", "2025-09-06T07:30:00+07:00"), never, all, ActionExpired, 0},
		{"duplicate", variant(t), func(string) bool { return true }, all, ActionDuplicate, 0},
		{"not whitelisted", variant(t), never, func(e string) bool { return e == "Lũ" }, ActionPending, 0},
		// Without expires, an alert sent more than an hour ago (a feed's
		// history, a controller that was down) waits for a person; a
		// recent one plays.
		{"no expires, recent", variant(t, "<expires>2025-09-06T19:00:00+07:00</expires>", ""), never, all, ActionPlay, 0},
		{"no expires, stale", variant(t, "<expires>2025-09-06T19:00:00+07:00</expires>", "", "<sent>2025-09-06T07:00:00+07:00", "<sent>2025-09-06T06:59:59+07:00"), never, all, ActionPending, 0},
		{"no expires, stale exercise", variant(t, "<expires>2025-09-06T19:00:00+07:00</expires>", "", "<sent>2025-09-06T07:00:00+07:00", "<sent>2025-09-06T05:00:00+07:00", "<status>Actual", "<status>Exercise"), never, all, ActionPending, 0},
		{"expires given, sent long ago", variant(t, "<sent>2025-09-06T07:00:00+07:00", "<sent>2025-09-05T07:00:00+07:00"), never, all, ActionPlay, 0},
	} {
		d := Decide(c.a, now, c.seen, c.auto)
		if d.Action != c.want || len(d.Cancel) != c.cancel {
			t.Errorf("%s: %s (cancel %v, %s), want %s with %d cancels", c.name, d.Action, d.Cancel, d.Reason, c.want, c.cancel)
		}
	}
}

// TestDecideScopeNotPublic: a CAP alert whose scope is Restricted (for
// users with an operational requirement) or Private (for the addressed
// recipients) was played at once on every public loudspeaker of its
// areas, like a Public one. A loudspeaker reaches everyone within earshot,
// so such an alert must never start on its own: it waits for an officer's
// approval, and the reason says why. A Cancel of it still withdraws.
func TestDecideScopeNotPublic(t *testing.T) {
	now := time.Date(2025, 9, 6, 8, 0, 0, 0, time.FixedZone("+07", 7*3600))
	never := func(string) bool { return false }
	all := func(string) bool { return true }
	for _, c := range []struct {
		name  string
		a     *Alert
		want  Action
		words string
	}{
		{"restricted", variant(t, "<scope>Public</scope>", "<scope>Restricted</scope><restriction>Ban chỉ huy PCTT các xã</restriction>"),
			ActionPending, `scope Restricted ("Ban chỉ huy PCTT các xã")`},
		{"private", variant(t, "<scope>Public</scope>", "<scope>Private</scope><addresses>pctt.haiphong.gov.vn</addresses>"),
			ActionPending, `scope Private (addresses "pctt.haiphong.gov.vn")`},
		{"restricted exercise", variant(t, "<scope>Public</scope>", "<scope>Restricted</scope>", "<status>Actual", "<status>Exercise"),
			ActionPending, "scope Restricted"},
		{"restricted cancel", variant(t, "<msgType>Alert", "<msgType>Cancel", "<scope>Public</scope>",
			"<scope>Restricted</scope><references>nchmf.gov.vn,NCHMF-2025-0906-00,2025-09-06T06:00:00+07:00</references>"),
			ActionCancel, ""},
		{"restricted test", variant(t, "<scope>Public</scope>", "<scope>Restricted</scope>", "<status>Actual", "<status>Test"),
			ActionLog, ""},
	} {
		d := Decide(c.a, now, never, all)
		if d.Action != c.want || !strings.Contains(d.Reason, c.words) {
			t.Errorf("%s: %s (%s), want %s saying %q", c.name, d.Action, d.Reason, c.want, c.words)
		}
	}
}

func TestTargets(t *testing.T) {
	a := variant(t)
	nodes := []NodePosition{
		{Area: "12346", Lat: 20.71, Lon: 106.55}, // in the circle
		{Area: "12400", Lat: 20.85, Lon: 106.65}, // in the polygon
		{Area: "12500", Lat: 21.50, Lon: 105.00}, // far away
	}
	got := Targets(a.Info(), func(id string) bool { return id == "318" }, nodes)
	if strings.Join(got, " ") != "12346 12400 318" {
		t.Errorf("targets %v", got)
	}
	wrong := variant(t, "<value>318</value>", "<value>999</value>", "<value>318</value>", "<value>999</value>", "<circle>20.70,106.55 3</circle>", "",
		"<polygon>20.90,106.60 20.90,106.70 20.80,106.70 20.80,106.60 20.90,106.60</polygon>", "")
	if got := Targets(wrong.Info(), func(id string) bool { return id == "318" }, nodes); len(got) != 0 {
		t.Errorf("an area we do not have mapped to %v", got)
	}
}

// FuzzParse: no input panics the parser, and whatever it accepts has the
// required fields and a key.
func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte(`<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier></alert>`))
	f.Add([]byte(`<!DOCTYPE alert [<!ENTITY x "y">]><alert>&x;</alert>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := Parse(strings.NewReader(string(raw)))
		if err != nil {
			return
		}
		if a.Identifier == "" || a.Sender == "" || a.SentAt().IsZero() || a.Status == "" || a.MsgType == "" {
			t.Fatalf("accepted an alert without a required field: %+v", a)
		}
		if in := a.Info(); in != nil {
			_ = in.Message()
			Targets(in, func(string) bool { return true }, []NodePosition{{Area: "x", Lat: 1, Lon: 1}})
		}
	})
}

// TestDecideEveryBlockOfTheLanguage: an alert with two vi-VN blocks (for
// different areas) has both to play, in order, not only the first; an
// expired one is left out; one whose event is not on the auto-start list
// makes the alert wait.
func TestDecideEveryBlockOfTheLanguage(t *testing.T) {
	now := time.Date(2025, 9, 6, 8, 0, 0, 0, time.FixedZone("+07", 7*3600))
	second := func(expires, event string) string {
		return `<info><language>vi-VN</language><category>Met</category><event>` + event + `</event><urgency>Expected</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><expires>` + expires + `</expires><headline>Mưa lớn</headline>
    <area><areaDesc>Huyện Vĩnh Bảo</areaDesc><geocode><valueName>loaxa</valueName><value>319</value></geocode></area></info></alert>`
	}
	never := func(string) bool { return false }
	d := Decide(variant(t, "</alert>", second("2025-09-06T20:00:00+07:00", "Bão")), now, never, func(string) bool { return true })
	if d.Action != ActionPlay || len(d.Blocks) != 2 || d.Blocks[0] != d.Info || d.Blocks[1].Headline != "Mưa lớn" {
		t.Errorf("two vi-VN blocks: %s, blocks %v; want both to play, the first first", d.Action, d.Blocks)
	}
	if d := Decide(variant(t, "</alert>", second("2025-09-06T07:30:00+07:00", "Bão")), now, never, func(string) bool { return true }); d.Blocks != nil {
		t.Errorf("an expired second block: blocks %v, want none (Info alone)", d.Blocks)
	}
	if d := Decide(variant(t, "</alert>", second("2025-09-06T20:00:00+07:00", "Lũ")), now, never, func(e string) bool { return e == "Bão" }); d.Action != ActionPending || !strings.Contains(d.Reason, `"Lũ"`) {
		t.Errorf("a second block of an event not on the list: %s (%s), want pending naming it", d.Action, d.Reason)
	}
	if d := Decide(variant(t), now, never, func(string) bool { return true }); d.Blocks != nil {
		t.Errorf("one vi-VN block and one en-US: blocks %v, want none (Info alone)", d.Blocks)
	}
}

// TestDecideJudgesEachBlock: a storm alert's first vi-VN block (the coast,
// to shelter overnight) had expired while its second (inland, heavy rain
// until evening) had not, and the whole alert was recorded expired: the
// inland communes heard nothing. Each block is judged on its own: the
// alert plays what has not expired and is expired only when every block
// is; an old alert waits for approval if a block it plays gives no expiry.
func TestDecideJudgesEachBlock(t *testing.T) {
	now := time.Date(2025, 9, 6, 20, 0, 0, 0, time.FixedZone("+07", 7*3600)) // the first block expired at 19:00
	second := func(expires string) string {
		if expires != "" {
			expires = "<expires>" + expires + "</expires>"
		}
		return `<info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Expected</urgency>
    <severity>Severe</severity><certainty>Likely</certainty>` + expires + `<headline>Mưa lớn</headline>
    <area><areaDesc>Huyện Vĩnh Bảo</areaDesc><geocode><valueName>loaxa</valueName><value>319</value></geocode></area></info></alert>`
	}
	never, always := func(string) bool { return false }, func(string) bool { return true }
	d := Decide(variant(t, "</alert>", second("2025-09-06T23:00:00+07:00")), now, never, always)
	if d.Action != ActionPlay || d.Info == nil || d.Info.Headline != "Mưa lớn" || d.Blocks != nil {
		t.Errorf("first block expired, second not: %s (%s), info %v, blocks %v; want the second to play alone", d.Action, d.Reason, d.Info, d.Blocks)
	}
	if want := time.Date(2025, 9, 6, 23, 0, 0, 0, time.FixedZone("+07", 7*3600)); !d.Expires.Equal(want) {
		t.Errorf("expires %v, want the second block's %v", d.Expires, want)
	}
	// The block left out is noted by its place among the info elements
	// (the first is en-US), after why it waits if it does.
	if want := `info block 2 "Bão số 5 đổ bộ vào Hải Phòng" (Bão) not played: it expired at 2025-09-06T19:00:00+07:00`; d.Reason != want {
		t.Errorf("reason %q, want %q", d.Reason, want)
	}
	if d = Decide(variant(t, "</alert>", second("2025-09-06T23:00:00+07:00")), now, never, never); !strings.HasPrefix(d.Reason, `event "Bão" is not on the auto-start list`) ||
		!strings.HasSuffix(d.Reason, "; info block 2 \"Bão số 5 đổ bộ vào Hải Phòng\" (Bão) not played: it expired at 2025-09-06T19:00:00+07:00") {
		t.Errorf("reason %q, want why it waits, then the block that expired", d.Reason)
	}
	d = Decide(variant(t, "</alert>", second("2025-09-06T19:30:00+07:00")), now, never, always)
	if d.Action != ActionExpired || !strings.Contains(d.Reason, "19:30") {
		t.Errorf("both blocks expired: %s (%s), want expired at the later, 19:30", d.Action, d.Reason)
	}
	// Sent at 07:00, 13 hours before: a block without expires may be over.
	d = Decide(variant(t, "</alert>", second("")), now, never, always)
	if d.Action != ActionPending || !strings.Contains(d.Reason, "no expires") {
		t.Errorf("the block left to play gives no expires, sent 13 h ago: %s (%s), want pending", d.Action, d.Reason)
	}
}

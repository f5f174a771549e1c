package web

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, method, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestServesPageAndFiles(t *testing.T) {
	h, err := Handler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp := get(t, h, "GET", "/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<html lang="vi">`) || !strings.Contains(string(body), "/static/js/app.js") {
		t.Fatalf("GET /: %d %.200s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET / Content-Type %q", ct)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY", "Cache-Control": "no-cache",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("GET / %s %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self'") || strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP %q must allow only the controller's own scripts", ContentSecurityPolicy)
	}

	js := get(t, h, "GET", "/static/js/app.js")
	if js.StatusCode != 200 || js.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("app.js: %d %q", js.StatusCode, js.Header.Get("Content-Type"))
	}
	// Revalidation: the ETag answers 304 without the body.
	etag := js.Header.Get("ETag")
	if again := get(t, h, "GET", "/static/js/app.js", "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d, want 304", etag, again.StatusCode)
	}
	// Gzip for browsers that take it, the same bytes once unpacked.
	plain, _ := io.ReadAll(get(t, h, "GET", "/static/app.css").Body)
	gz := get(t, h, "GET", "/static/app.css", "Accept-Encoding", "gzip, br")
	if gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("app.css with Accept-Encoding gzip: Content-Encoding %q", gz.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	unpacked, _ := io.ReadAll(zr)
	if string(unpacked) != string(plain) || len(plain) == 0 {
		t.Errorf("gzipped app.css unpacks to %d bytes, plain is %d", len(unpacked), len(plain))
	}
	if r := get(t, h, "GET", "/static/app.css", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent to a browser that refused it")
	}

	if r := get(t, h, "GET", "/static/nothing.js"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d", r.StatusCode)
	}
	if r := get(t, h, "POST", "/"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	if r := get(t, h, "HEAD", "/"); r.StatusCode != 200 {
		t.Errorf("HEAD /: %d", r.StatusCode)
	}
}

// TestNothingFromTheInternet: no embedded file names an http(s) address to
// load, so the console works where offices cannot reach the internet.
// The console's refresh periods come from the controller only where a
// test shortened them: the page as shipped carries no factor, and none
// can lengthen a period (an officer's screen would go stale) or be
// negative.
func TestRefreshFactorInThePage(t *testing.T) {
	page := func(opt Options) string {
		t.Helper()
		h, err := Handler(opt)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(get(t, h, "GET", "/").Body)
		return string(body)
	}
	if got := page(Options{}); strings.Contains(got, "loaxa-refresh") {
		t.Errorf("the page as shipped carries a refresh factor:\n%s", got)
	}
	if got := page(Options{Refresh: 0.05}); !strings.Contains(got, `<meta name="loaxa-refresh" content="0.05">`) {
		t.Errorf("the page for a refresh factor of 0.05 lacks it:\n%s", got)
	}
	for _, bad := range []float64{-1, 2} {
		if _, err := Handler(Options{Refresh: bad}); err == nil {
			t.Errorf("Handler with a refresh factor of %v: no error", bad)
		}
	}
}

// TestEnglishCountsHavePlurals: the English console said "1 clusters will
// sound at once" and "Ended 1 sessions.". A count before a noun the
// console counts takes the noun's two forms, {n|cluster|clusters}, which t
// in js/i18n.js picks from; Vietnamese has no plural and no such forms.
func TestEnglishCountsHavePlurals(t *testing.T) {
	bare := regexp.MustCompile(`\{\w+\} (?:\w+ )?(?:clusters|sessions|conflicts|polls|frames|minutes|times|files|attempts|areas|bulletins|bulletin\(s\))\b`)
	for k, v := range dictionary(t, "en") {
		if m := bare.FindString(v); m != "" {
			t.Errorf("en.json %q says %q: give the noun its singular, {n|cluster|clusters}", k, m)
		}
	}
	forms := regexp.MustCompile(`\{\w+\|`)
	for k, v := range dictionary(t, "vi") {
		if forms.MatchString(v) {
			t.Errorf("vi.json %q has plural forms (Vietnamese has none): %q", k, v)
		}
	}
}

func TestNothingFromTheInternet(t *testing.T) {
	remote := regexp.MustCompile(`(src|href|url\(|import|from)\s*=?\s*["'(]?\s*(https?:)?//`)
	walk(t, func(p string, body string) {
		if m := remote.FindString(body); m != "" {
			t.Errorf("%s loads from another site: %q", p, m)
		}
	})
}

func walk(t *testing.T, f func(p, body string)) {
	t.Helper()
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		f(p, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestModulesResolve: every module a script imports is embedded.
func TestModulesResolve(t *testing.T) {
	imp := regexp.MustCompile(`(?:from\s+|import\()\s*'(\.{1,2}/[^']+)'`)
	n := 0
	walk(t, func(p, body string) {
		if path.Ext(p) != ".js" {
			return
		}
		for _, m := range imp.FindAllStringSubmatch(body, -1) {
			n++
			target := path.Join(path.Dir(p), m[1])
			if _, err := fs.Stat(static, target); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
	})
	if n < 10 {
		t.Errorf("found only %d imports; the pattern is broken", n)
	}
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:href|src)="/(static/[^"]+)"`).FindAllStringSubmatch(string(page), -1)
	for _, m := range refs {
		if _, err := fs.Stat(static, m[1]); err != nil {
			t.Errorf("index.html names /%s, which is not embedded", m[1])
		}
	}
	if len(refs) < 8 {
		t.Errorf("index.html names only %d files; the pattern is broken", len(refs))
	}
}

// TestTranslations: Vietnamese and English have the same keys, every key a
// script names literally exists, and the Vietnamese words carry their
// diacritics.
// dictionary reads a language's words.
func dictionary(t *testing.T, lang string) map[string]string {
	t.Helper()
	raw, err := static.ReadFile("static/i18n/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s.json: %v", lang, err)
	}
	return m
}

func TestTranslations(t *testing.T) {
	vi, en := dictionary(t, "vi"), dictionary(t, "en")
	for k, v := range vi {
		if _, ok := en[k]; !ok {
			t.Errorf("key %q is in vi.json but not en.json", k)
		}
		if strings.TrimSpace(v) == "" {
			t.Errorf("vi.json %q is empty", k)
		}
	}
	for k := range en {
		if _, ok := vi[k]; !ok {
			t.Errorf("key %q is in en.json but not vi.json", k)
		}
	}
	use := regexp.MustCompile(`\bt\('([a-z_]+\.[a-z0-9_.]+)'\s*[,)]`)
	used := 0
	walk(t, func(p, body string) {
		for _, m := range use.FindAllStringSubmatch(body, -1) {
			used++
			if _, ok := vi[m[1]]; !ok {
				t.Errorf("%s uses key %q, which vi.json lacks", p, m[1])
			}
		}
	})
	if used < 20 {
		t.Errorf("found only %d uses of t(); the pattern is broken", used)
	}
	for k, want := range map[string]string{"nav.emergency": "PHÁT KHẨN CẤP", "nav.library": "Thư viện âm thanh", "nav.programme": "Lịch phát", "scope.commune": "Cán bộ {area}"} {
		if vi[k] != want {
			t.Errorf("vi %q = %q, want %q", k, vi[k], want)
		}
	}
	// Each role has a scope line in both languages.
	for _, role := range []string{"admin", "province", "district", "commune", "technician", "viewer"} {
		if !strings.Contains(vi["scope."+role], "{area}") || !strings.Contains(en["scope."+role], "{area}") {
			t.Errorf("scope.%s must name the area in both languages", role)
		}
	}
}

// TestDayNamesHaveOneSpelling: the session form and list said "Thứ Hai"
// from keys of their own (weekday.*) beside the bulletin form's and the
// sentences' "thứ Hai" (day.*), so an officer saw a day spelt two ways on
// one screen. The day names live once, in day.*, as Vietnamese writes them
// inside a sentence ("Hằng tuần vào thứ Hai"; Sunday is "Chủ nhật"
// anywhere); a label or list item that begins with one capitalises its
// first letter (recurrence.js dayLabel). No other key repeats them, and
// every key prefix a script completes at run time (t('day.' + d)) has
// keys.
func TestDayNamesHaveOneSpelling(t *testing.T) {
	vi, en := dictionary(t, "vi"), dictionary(t, "en")
	want := map[string]string{"MO": "thứ Hai", "TU": "thứ Ba", "WE": "thứ Tư", "TH": "thứ Năm", "FR": "thứ Sáu", "SA": "thứ Bảy", "SU": "Chủ nhật"}
	names := map[string]bool{}
	for code, name := range want {
		if got := vi["day."+code]; got != name {
			t.Errorf("vi day.%s = %q, want %q", code, got, name)
		}
		names[strings.ToLower(name)], names[strings.ToLower(en["day."+code])] = true, true
	}
	for _, dict := range []map[string]string{vi, en} {
		for k, v := range dict {
			if !strings.HasPrefix(k, "day.") && names[strings.ToLower(v)] {
				t.Errorf("key %q spells the day name %q again; use day.* (dayLabel to begin a label)", k, v)
			}
		}
	}
	prefix := regexp.MustCompile(`\bt\('([a-z_]+\.(?:[a-z0-9_]+\.)*)'\s*\+`)
	walk(t, func(p, body string) {
		for _, m := range prefix.FindAllStringSubmatch(body, -1) {
			found := false
			for k := range vi {
				found = found || strings.HasPrefix(k, m[1])
			}
			if !found {
				t.Errorf("%s completes keys %q…, which vi.json has none of", p, m[1])
			}
		}
	})
}

// TestEveryAlarmAndReasonIsWorded: each alarm kind the controller can
// raise has a name in both languages and a case in ui.js's alarmDetail
// (which words its facts), and each failure reason a node or the
// controller can give has words in both languages. The kinds and reasons
// are read from their Go constants, so a new one cannot be missed.
func TestEveryAlarmAndReasonIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	ui, err := static.ReadFile("static/js/ui.js")
	if err != nil {
		t.Fatal(err)
	}
	kinds := constants(t, `(?m)^\s*Alarm\w+\s*=\s*"([a-z-]+)"`, "../loaxa/health.go")
	if len(kinds) < 15 {
		t.Fatalf("found %d alarm kinds in ../loaxa/health.go: %v; the pattern is broken", len(kinds), kinds)
	}
	for _, k := range kinds {
		for lang, d := range dicts {
			if d["alarm."+k] == "" {
				t.Errorf("%s.json has no name for the alarm kind %q", lang, k)
			}
		}
		if !strings.Contains(string(ui), "case '"+k+"':") {
			t.Errorf("ui.js alarmDetail has no case for the alarm kind %q", k)
		}
	}
	reasons := constants(t, `(?m)^\s*(?:const\s+)?Reason\w*\s*=\s*"([a-z-]+)"`, append(protocolFiles(t), "../loaxa/emergency.go")...)
	if len(reasons) < 12 {
		t.Fatalf("found %d reasons: %v; the pattern is broken", len(reasons), reasons)
	}
	for _, r := range reasons {
		for lang, d := range dicts {
			if d["reason."+r] == "" {
				t.Errorf("%s.json has no words for the failure reason %q", lang, r)
			}
		}
	}
}

// TestEveryRefusalReasonIsWorded: a refusal the API names by its reason
// (speech_unavailable) is said wholly in the console's words, and the 409
// of a proposal decided meanwhile by its state; one without words would
// show the API's English after a generic heading again. The Vietnamese
// words must be Vietnamese (with its marks), not the English copied in:
// they are all an officer who reads no English is shown. The reasons are
// read from their Go constants, so a new one cannot be missed.
func TestEveryRefusalReasonIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	reasons := constants(t, `(?m)^\s*Reason\w+\s*=\s*"([a-z_]+)"`, "../loaxa/error.go")
	if len(reasons) < 13 {
		t.Fatalf("found %d reasons in ../loaxa/error.go: %v; the pattern is broken", len(reasons), reasons)
	}
	keys := []string{}
	for _, r := range reasons {
		keys = append(keys, "err.reason."+r)
	}
	for _, st := range []string{loaxa.ProposalAccepted, loaxa.ProposalDeclined, loaxa.ProposalWithdrawn} {
		keys = append(keys, "programme.proposal_was_"+st)
	}
	for _, k := range keys {
		for lang, d := range dicts {
			if d[k] == "" {
				t.Errorf("%s.json has no words for %s: the console shows the API's English", lang, k)
			}
		}
		if vi := dicts["vi"][k]; vi != "" && (vi == dicts["en"][k] || !vietnameseMarks.MatchString(vi)) {
			t.Errorf("vi.json's words for %s are not Vietnamese: %q", k, vi)
		}
	}
	// A reason or a code worded for one screen (err.reason.<reason>.<screen>,
	// err.<code>.<screen>: ui.js refusalText) names one there is, in both
	// languages, Vietnamese in vi.json.
	codes := constants(t, `(?m)^\s*E[A-Z]\w*\s*=\s*"([a-z_]+)"`, "../loaxa/error.go")
	if !slices.Contains(codes, loaxa.EInternal) {
		t.Fatalf("found codes %v in ../loaxa/error.go; the pattern is broken", codes)
	}
	for lang, d := range dicts {
		for k := range d {
			if m := screenReason.FindStringSubmatch(k); m != nil && !slices.Contains(reasons, m[1]) {
				t.Errorf("%s.json words %s for a reason there is not: %q", lang, k, m[1])
			} else if m := screenCode.FindStringSubmatch(k); m != nil && m[1] != "reason" && !slices.Contains(codes, m[1]) {
				t.Errorf("%s.json words %s for a code there is not: %q", lang, k, m[1])
			}
			if !screenReason.MatchString(k) && !screenCode.MatchString(k) {
				continue
			}
			for other, od := range dicts {
				if od[k] == "" {
					t.Errorf("%s.json has words for %s, %s.json none", lang, k, other)
				}
			}
			if vi := dicts["vi"][k]; vi != "" && (vi == dicts["en"][k] || !vietnameseMarks.MatchString(vi)) {
				t.Errorf("vi.json's words for %s are not Vietnamese: %q", k, vi)
			}
		}
	}
}

// screenReason and screenCode match the key of a refusal reason's, or an
// error code's, words for one screen.
var (
	screenReason = regexp.MustCompile(`^err\.reason\.([a-z_]+)\.([a-z_]+)$`)
	screenCode   = regexp.MustCompile(`^err\.([a-z_]+)\.([a-z_]+)$`)
)

// vietnameseMarks matches a letter only Vietnamese writes (đ, ơ, ư, and
// the vowels with tone marks); Vietnamese words of a sentence have some.
var vietnameseMarks = regexp.MustCompile(`[đĐơƠưƯàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]`)

// TestSessionDeleteRefusedForAnUnplayableBulletinIsWorded: a session
// delete refused because a bulletin cannot be scheduled (409, reason
// bulletin_unplayable) showed "Không tìm thấy. Content "5c26…" does not
// exist." The console says it in the officer's words, naming the session,
// the bulletin, its sender and what of it is missing; each part the
// scheduler can name (loaxa Unplayable constants, read from the Go code so
// a new one cannot be missed) has words in both languages.
func TestSessionDeleteRefusedForAnUnplayableBulletinIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	parts := constants(t, `(?m)^\s*Unplayable\w+\s*=\s*"([a-z_]+)"`, "../loaxa/programme.go")
	if len(parts) < 4 {
		t.Fatalf("found %d unplayable parts in ../loaxa/programme.go: %v; the pattern is broken", len(parts), parts)
	}
	for lang, d := range dicts {
		for _, p := range parts {
			if d["programme.unplayable_"+p] == "" {
				t.Errorf("%s.json has no words for the unplayable part %q (key programme.unplayable_%s)", lang, p, p)
			}
		}
		for _, ph := range []string{"{name}", "{title}", "{area}", "{part}"} {
			if !strings.Contains(d["programme.session_check_unplayable"], ph) {
				t.Errorf("%s programme.session_check_unplayable lacks %s: %q", lang, ph, d["programme.session_check_unplayable"])
			}
		}
	}
	vi := dicts["vi"]
	for k, want := range map[string]string{
		"programme.unplayable_opening_chime": "thiếu tệp nhạc hiệu mở đầu trong thư viện",
		"programme.unplayable_rule":          "lịch lặp lại của bản tin không hợp lệ",
	} {
		if vi[k] != want {
			t.Errorf("vi %q = %q, want %q", k, vi[k], want)
		}
	}
	if got := vi["programme.session_check_unplayable"]; !strings.HasPrefix(got, "Chưa xoá buổi “{name}”: bản tin “{title}” của {area} không xếp lịch được ({part})") {
		t.Errorf("vi programme.session_check_unplayable = %q; want it to begin with what was not done and why", got)
	}
	ui, err := static.ReadFile("static/js/views/programme.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ui), "'"+loaxa.ReasonBulletinUnplayable+"'") {
		t.Errorf("programme.js does not look for reason %q in a refused session delete", loaxa.ReasonBulletinUnplayable)
	}
}

// TestEveryNodeStateAndEventIsWorded: a cluster's page showed "stale",
// "updated" and "update-failed" in English to a Vietnamese officer (its
// state's badge, badge(st.state, 'state.'), and its plays' badges,
// badge(e.type, 'event.'), fall back to the raw word without a warning),
// and the cluster and admin pages showed the credential states "active",
// "pending" and "revoked" raw. Every node state, every event type a node
// reports and every credential state has words in both languages; they
// are read from the Go code, so a new one cannot be missed.
func TestEveryNodeStateAndEventIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	events := constants(t, `(?m)^\s*Event\w+\s+EventType\s*=\s*"([a-z-]+)"`, protocolFiles(t)...)
	if len(events) < 10 {
		t.Fatalf("found %d event types in the protocol: %v; the pattern is broken", len(events), events)
	}
	credentials := constants(t, `(?m)^\s*Credentials\w+\s*=\s*"([a-z-]+)"`, "../loaxa/node.go")
	if len(credentials) < 3 {
		t.Fatalf("found %d credential states in ../loaxa/node.go: %v; the pattern is broken", len(credentials), credentials)
	}
	for _, c := range []struct {
		prefix, what string
		values       []string
	}{
		{"state.", "node state", loaxa.NodeStates},
		{"event.", "event type", events},
		{"credentials.", "credential state", credentials},
	} {
		for _, v := range c.values {
			for lang, d := range dicts {
				if d[c.prefix+v] == "" {
					t.Errorf("%s.json has no word for the %s %q (key %s%s): the console shows it raw", lang, c.what, v, c.prefix, v)
				}
			}
		}
	}
}

// TestEveryLiveEndReasonIsWorded: a live call that ended for the broker,
// the officer's session or bad audio was told only as "Đã kết thúc: n
// khung âm thanh.", as one the officer ended. Each reason the controller
// ends a call with has words in both languages (live.js's endReason), but
// those the state line says itself: the speaker stopped, or who cut it.
func TestEveryLiveEndReasonIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	reasons := constants(t, `(?m)^\s*LiveEnd\w+\s*=\s*"([a-z ]+)"`, "../loaxa/live.go")
	if len(reasons) < 10 {
		t.Fatalf("found %d live end reasons in ../loaxa/live.go: %v; the pattern is broken", len(reasons), reasons)
	}
	for _, r := range reasons {
		if r == loaxa.LiveEndSpeakerStopped || r == loaxa.LiveEndCut {
			continue
		}
		key := "live.reason." + strings.ReplaceAll(r, " ", "_")
		for lang, d := range dicts {
			if d[key] == "" {
				t.Errorf("%s.json has no words for the live call's end reason %q (key %s)", lang, r, key)
			}
		}
	}
}

// TestEveryAuditActionIsWorded: the audit screen showed each action as
// its code ("announcement.create", "emergency.cancel"), which an officer
// cannot read. Each action the controller records has words in both
// languages (audit.act.<code>); the codes are read from the Go code that
// records them (the constants and the literals passed to audit, auditIn
// and auditAs), so a new one cannot be missed. A code the console has no
// words for (a newer controller's) is shown as the code.
func TestEveryAuditActionIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	files, err := filepath.Glob("../http/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			sources = append(sources, f)
		}
	}
	sources = append(sources, "../live/live.go")
	codes := constants(t, `(?m)^\s*(?:const\s+)?[aA]udit\w+\s*=\s*"([a-z_.]+)"`, sources...)
	codes = append(codes, constants(t, `\.audit(?:In)?\(r, "([a-z_.]+)",`, sources...)...)
	codes = append(codes, constants(t, `\.auditAs\(r, [^,]+, "([a-z_.]+)",`, sources...)...)
	// The proposal handler records its decision: "proposal." + state.
	if len(constants(t, `("proposal\.")\+state`, "../http/proposal.go")) != 1 {
		t.Fatal(`../http/proposal.go no longer records "proposal."+state; read its codes anew`)
	}
	codes = append(codes, "proposal."+loaxa.ProposalAccepted, "proposal."+loaxa.ProposalDeclined)
	if len(codes) < 45 {
		t.Fatalf("found %d audit actions: %v; the patterns are broken", len(codes), codes)
	}
	for _, c := range codes {
		for lang, d := range dicts {
			if d["audit.act."+c] == "" {
				t.Errorf("%s.json has no words for the audit action %q (key audit.act.%s): the audit screen shows the code", lang, c, c)
			}
		}
	}
}

// TestEveryAuditDetailKeyIsWorded: the audit screen says an entry's
// detail as labelled facts, each "key=value" the controller writes under
// its label (audit.k.<key>), or said whole (audit.d.<key>_<value>, as
// drill=true is "Diễn tập"); a key with no words showed as "key=value",
// English in the middle of the worded log. The keys are read from the
// string literals of the Go code that writes details (the audit calls,
// the Detail: fields and the functions named …Detail or auditTargets), so
// a new one cannot be missed.
func TestEveryAuditDetailKeyIsWorded(t *testing.T) {
	dicts := map[string]map[string]string{"vi": dictionary(t, "vi"), "en": dictionary(t, "en")}
	files, err := filepath.Glob("../http/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../live/live.go", "../release/rollout.go")
	writes := regexp.MustCompile(`(?m)^.*(?:\.audit(?:In|As)?\(r, |\.auditActor\(ctx, |Detail: ).*$|(?ms)^func (?:\w*Detail|auditTargets)\(.*?^}`)
	literal := regexp.MustCompile(`"(?:[^"\\]|\\.)*"|` + "`[^`]*`")
	// A key as the console's audit.js reads it (PAIR): letters of either
	// case, digits and _ after a letter. It was [a-z][a-z_]*, which never
	// saw a camelCase key (cap.receive's msgType=) nor one with digits
	// (sha256=), so those could lose their words unnoticed.
	key := regexp.MustCompile(`(?:^|[\s"(,])([A-Za-z][A-Za-z0-9_]*)=`)
	for sample, want := range map[string]string{"status=Actual msgType=Alert": "msgType", "arch=%s sha256=%s": "sha256"} {
		found := false
		for _, m := range key.FindAllStringSubmatch(sample, -1) {
			found = found || m[1] == want
		}
		if !found {
			t.Fatalf("the key pattern does not see %s= in %q", want, sample)
		}
	}
	keys := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range writes.FindAll(src, -1) {
			for _, lit := range literal.FindAll(w, -1) {
				for _, m := range key.FindAllSubmatch(lit[1:len(lit)-1], -1) {
					keys[string(m[1])] = true
				}
			}
		}
	}
	if len(keys) < 25 {
		t.Fatalf("found %d audit detail keys: %v; the patterns are broken", len(keys), slices.Sorted(maps.Keys(keys)))
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		// "start_before=05:30 start=06:00" is said as one fact, under
		// start's label: "Bắt đầu: 05:30 → 06:00".
		k = strings.TrimSuffix(k, "_before")
		for lang, d := range dicts {
			if d["audit.k."+k] != "" || hasPrefix(d, "audit.d."+k+"_") {
				continue
			}
			t.Errorf("%s.json has no words for the audit detail key %q (audit.k.%s, or audit.d.%s_<value>): the audit screen shows %s=…", lang, k, k, k, k)
		}
	}
}

// hasPrefix reports whether d has a key beginning with prefix.
func hasPrefix(d map[string]string, prefix string) bool {
	for k := range d {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// constants collects the first group of pattern in Go source files: the
// values of a family of constants.
func constants(t *testing.T, pattern string, files ...string) []string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	var out []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

// protocolFiles are the wire contract's Go sources.
func protocolFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../protocol/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("protocol sources: %v %v", files, err)
	}
	return files
}

// TestContrast: text colours of the stylesheet against the backgrounds
// they are used on reach WCAG AA (4.5:1) for normal text.
func TestContrast(t *testing.T) {
	css, err := static.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	color := func(name string) string {
		if strings.HasPrefix(name, "#") {
			return name
		}
		c, ok := vars[name]
		if !ok {
			t.Fatalf("app.css defines no --%s", name)
		}
		return c
	}
	pairs := [][2]string{
		{"ink", "bg"}, {"ink", "panel"}, {"muted", "panel"}, {"muted", "bg"}, {"brand", "panel"},
		{"brand-ink", "brand"}, {"#ffffff", "emergency"}, {"#ffffff", "drill"}, {"#ffffff", "bad"},
		{"ok", "panel"}, {"bad", "panel"}, {"warn", "panel"}, {"never", "panel"},
		{"ink", "#e8eef4"}, {"ink", "#eef3f8"}, {"muted", "#eef3f8"}, {"bad", "#fdecea"},
	}
	for _, p := range pairs {
		if r := contrast(color(p[0]), color(p[1])); r < 4.5 {
			t.Errorf("%s on %s: contrast %.2f, want at least 4.5", p[0], p[1], r)
		}
	}
	if r := contrast("#000000", "#ffffff"); r < 20.9 || r > 21.1 {
		t.Fatalf("contrast of black on white %.2f, want 21", r)
	}
}

func contrast(a, b string) float64 {
	lum := func(hex string) float64 {
		var rgb [3]float64
		for i := range rgb {
			var v int
			fmt.Sscanf(hex[1+2*i:3+2*i], "%02x", &v)
			c := float64(v) / 255
			if c <= 0.03928 {
				rgb[i] = c / 12.92
			} else {
				rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
	}
	l1, l2 := lum(a), lum(b)
	if l1 < l2 {
		l1, l2 = l2, l1
	}
	return (l1 + 0.05) / (l2 + 0.05)
}

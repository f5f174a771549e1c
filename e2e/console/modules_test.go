package console

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/web"
	"loaxa.vn/protocol/nodeaudio"
)

// TestModulesInTheBrowser runs the console's pure modules in Chromium on
// cases whose answers come from elsewhere: the node format decoded by the
// controller's own Go decoder, and recurrence sentences as an officer
// would say them.
func TestModulesInTheBrowser(t *testing.T) {
	t.Parallel()
	ui, err := web.Handler(web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	defer srv.Close()
	b := StartBrowser(t)
	b.Do("open the page", chromedp.Navigate(srv.URL+"/static/index.html"))
	defer b.checkErrors()

	t.Run("node audio decodes as the controller decodes it", func(t *testing.T) {
		// A tone that sweeps and a burst of large steps: every ADPCM code
		// and a last, partial block.
		samples := make([]int16, 3*nodeaudio.SamplesPerBlock+517)
		for i := range samples {
			f := 200 + 3000*float64(i)/float64(len(samples))
			v := 20000 * math.Sin(2*math.Pi*f*float64(i)/16000)
			if i%1500 < 40 {
				v = float64((i%2)*2-1) * 32000
			}
			samples[i] = int16(v)
		}
		wav, err := nodeaudio.Encode(samples)
		if err != nil {
			t.Fatal(err)
		}
		r, err := nodeaudio.NewReader(bytesReader(wav))
		if err != nil {
			t.Fatal(err)
		}
		pcm, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int, len(pcm)/2)
		for i := range want {
			want[i] = int(int16(binary.LittleEndian.Uint16(pcm[2*i:])))
		}
		got := eval[[]int](t, b, `import('/static/js/audio.js').then(m => {
			const raw = Uint8Array.from(atob('`+base64.StdEncoding.EncodeToString(wav)+`'), c => c.charCodeAt(0)).buffer;
			const out = m.toPCM(raw);
			const v = new DataView(out);
			if (v.getUint16(20, true) !== 1 || v.getUint32(24, true) !== 16000) throw new Error('not 16 kHz PCM');
			return Array.from(new Int16Array(out, 44));
		})`)
		if len(got) != len(want) {
			t.Fatalf("browser decoded %d samples, the controller %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("sample %d: browser %d, controller %d", i, got[i], want[i])
			}
		}
	})

	t.Run("recurrence in words and as a rule", func(t *testing.T) {
		type rec struct {
			Kind, Time, Date string
			Days             []string
			Session          *session
		}
		evening := &session{"Buổi chiều", "17:00"}
		cases := []struct {
			in         rec
			rule, text string
		}{
			{rec{Kind: "daily", Time: "05:30"}, "FREQ=DAILY", "Hằng ngày lúc 05:30"},
			{rec{Kind: "daily", Session: evening}, "FREQ=DAILY", "Hằng ngày trong buổi “Buổi chiều” (17:00)"},
			{rec{Kind: "weekdays", Time: "06:00"}, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "Từ thứ Hai đến thứ Sáu lúc 06:00"},
			{rec{Kind: "weekly", Days: []string{"WE", "MO"}, Time: "17:15"}, "FREQ=WEEKLY;BYDAY=MO,WE", "Hằng tuần vào thứ Hai, thứ Tư lúc 17:15"},
			{rec{Kind: "weekly", Days: []string{"SU"}, Session: evening}, "FREQ=WEEKLY;BYDAY=SU", "Hằng tuần vào Chủ nhật trong buổi “Buổi chiều” (17:00)"},
			{rec{Kind: "once", Time: "07:00", Date: "02/09/2026"}, "", "Một lần lúc 07:00 ngày 02/09/2026"},
		}
		for _, tc := range cases {
			in, _ := json.Marshal(map[string]any{"kind": tc.in.Kind, "days": tc.in.Days, "time": tc.in.Time, "date": tc.in.Date, "session": tc.in.Session})
			got := eval[struct{ Rule, Text, Back string }](t, b, `Promise.all([import('/static/js/recurrence.js'), import('/static/js/i18n.js')]).then(async ([r, i]) => {
				await i.loadLanguage('vi');
				const c = `+string(in)+`;
				const rule = r.toRule(c.kind, c.days);
				return {Rule: rule, Text: r.describe(c), Back: r.fromRule(rule).kind};
			})`)
			if got.Rule != tc.rule || got.Text != tc.text {
				t.Errorf("%+v: rule %q, words %q; want %q, %q", tc.in, got.Rule, got.Text, tc.rule, tc.text)
			}
			if got.Back != tc.in.Kind {
				t.Errorf("%+v: the rule %q reads back as %q", tc.in, got.Rule, got.Back)
			}
		}
		if got := eval[string](t, b, `import('/static/js/recurrence.js').then(r => { try { r.toRule('weekly', []); return 'accepted'; } catch (e) { return e.message; } })`); got != "Chọn ít nhất một ngày trong tuần." {
			t.Errorf("weekly with no day: %q", got)
		}
		if got := eval[string](t, b, `import('/static/js/recurrence.js').then(r => r.fromRule('FREQ=MONTHLY;BYDAY=1MO').kind)`); got != "other" {
			t.Errorf("a monthly rule reads as %q, want other", got)
		}
	})

	// A session's days (TestSessionDaysChosenInTheForm): the boxes ticked
	// make its rule, and the rule is said in words in the session list.
	t.Run("a session's days in words and as a rule", func(t *testing.T) {
		for _, tc := range []struct {
			days       []string
			rule, text string
		}{
			{[]string{"FR", "MO", "TU", "WE", "TH"}, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "Thứ Hai đến thứ Sáu"},
			{[]string{"SU"}, "FREQ=WEEKLY;BYDAY=SU", "Chủ nhật"},
			{[]string{"MO", "WE", "SA"}, "FREQ=WEEKLY;BYDAY=MO,WE,SA", "Thứ Hai, thứ Tư, thứ Bảy"},
			{[]string{"SU", "SA"}, "FREQ=WEEKLY;BYDAY=SA,SU", "Thứ Bảy, Chủ nhật"},
			{[]string{"MO", "TU", "WE", "TH", "FR", "SA", "SU"}, "", "Hằng ngày"},
		} {
			in, _ := json.Marshal(tc.days)
			got := eval[struct{ Rule, Text string }](t, b, `Promise.all([import('/static/js/recurrence.js'), import('/static/js/i18n.js')]).then(async ([r, i]) => {
				await i.loadLanguage('vi');
				const rule = r.sessionDaysRule(`+string(in)+`);
				return {Rule: rule, Text: r.describeDays(rule)};
			})`)
			if got.Rule != tc.rule || got.Text != tc.text {
				t.Errorf("%v: rule %q, words %q; want %q, %q", tc.days, got.Rule, got.Text, tc.rule, tc.text)
			}
		}
		if got := eval[string](t, b, `import('/static/js/recurrence.js').then(r => r.describeDays('FREQ=DAILY') + ' | ' + r.describeDays('FREQ=MONTHLY;BYMONTHDAY=1'))`); got != "Hằng ngày | theo quy tắc FREQ=MONTHLY;BYMONTHDAY=1" {
			t.Errorf("daily and monthly rules read %q", got)
		}
	})

	// An English browser's date and time fields read 02/12/2026 as
	// 12 February and showed "05:00 PM" (TestDatesInVietnameseOrderInAnEnglishBrowser);
	// the console's own read the day first and the 24-hour clock, as
	// officers write them, and refuse what is no real day or time.
	t.Run("dates and times as officers write them", func(t *testing.T) {
		days := map[string]any{
			"02/12/2026": "2026-12-02", "2/12/2026": "2026-12-02", "02-12-2026": "2026-12-02", "2.12.2026": "2026-12-02",
			" 2 / 12 / 2026 ": "2026-12-02", "02122026": "2026-12-02", "2/12/26": "2026-12-02", "29/02/2028": "2028-02-29",
			"": "", "31/02/2026": nil, "29/02/2026": nil, "12/13/2026": nil, "00/12/2026": nil, "2026-12-02": nil, "2/12": nil, "hôm nay": nil,
		}
		times := map[string]any{
			"17:00": "17:00", "17h": "17:00", "17H": "17:00", "17h30": "17:30", "17g30": "17:30", "5:30": "05:30", "17.30": "17:30",
			"17": "17:00", "1730": "17:30", "530": "05:30", "0:00": "00:00", "": "",
			"24:00": nil, "17:60": nil, "5 PM": nil, "17:5": nil, "chiều": nil,
		}
		got := eval[map[string]map[string]any](t, b, `import('/static/js/ui.js').then(u => {
			const days = {}, times = {};
			for (const s of `+mustJSON(t, keys(days))+`) days[s] = u.parseDay(s);
			for (const s of `+mustJSON(t, keys(times))+`) times[s] = u.parseTime(s);
			return {days, times};
		})`)
		for in, want := range days {
			if g := got["days"][in]; g != want {
				t.Errorf("parseDay(%q) = %v, want %v", in, g, want)
			}
		}
		for in, want := range times {
			if g := got["times"][in]; g != want {
				t.Errorf("parseTime(%q) = %v, want %v", in, g, want)
			}
		}
	})

	// The cluster's page said "Thời gian chạy 1:01" and the library
	// "Thời lượng 0:02", with no unit: an officer could not tell minutes
	// from hours. Every duration is said with its units, in both languages.
	t.Run("durations say their units", func(t *testing.T) {
		cases := []struct {
			ms     int
			vi, en string
		}{
			{0, "0 giây", "0 s"},
			{2000, "2 giây", "2 s"},
			{61000, "1 phút 1 giây", "1 min 1 s"},
			{120000, "2 phút", "2 min"},
			{3723000, "1 giờ 2 phút 3 giây", "1 h 2 min 3 s"},
			{90061000, "25 giờ 1 phút 1 giây", "25 h 1 min 1 s"},
		}
		for _, tc := range cases {
			got := eval[[]string](t, b, fmt.Sprintf(`Promise.all([import('/static/js/ui.js'), import('/static/js/i18n.js')]).then(async ([u, i]) => {
				await i.loadLanguage('vi');
				const vi = u.fmtDuration(%[1]d);
				await i.loadLanguage('en');
				const en = u.fmtDuration(%[1]d);
				await i.loadLanguage('vi');
				return [vi, en];
			})`, tc.ms))
			if len(got) != 2 || got[0] != tc.vi || got[1] != tc.en {
				t.Errorf("fmtDuration(%d) = %q, want %q and %q", tc.ms, got, tc.vi, tc.en)
			}
		}
	})

	// A conflict without items or a time read "Buổi “Buổi sáng” không có
	// vào ngày ." and "Buổi “Buổi sáng” ngày 06:00 Thứ Hai, 09/03 bị quá
	// thời lượng tối đa trên …", a time where the day belongs, and a play
	// 40 s into its session "lúc 06:00": each says its day as a day, or
	// none, and its times with the seconds they have, as the API's
	// messages do.
	t.Run("conflicts without items or a time", func(t *testing.T) {
		sessions := `[{id: 's000001', name: 'Buổi sáng', start: '06:00', max_minutes: 1}]`
		cases := []struct{ name, conflict, want string }{
			{"a session that does not run, no play named", `{kind: 'no-session', session: 's000001', occurrences: []}`,
				"Buổi “Buổi sáng” không phát vào ngày đã chọn, nên bản tin sẽ không phát ngày đó. Hãy chọn ngày khác, hoặc một buổi có phát vào ngày đó."},
			{"a session run past its length, no items", `{kind: 'session-overflow', node: 'lap-le-01', session: 's000001@20260309', occurrences: ['a000003@20260308T230040.000Z']}`,
				"Cụm loa lap-le-01: buổi “Buổi sáng” vào Thứ Hai, 09/03 phát quá thời lượng tối đa. Hãy bớt hoặc chuyển bản tin sang buổi khác, hoặc tăng số phút tối đa của buổi."},
			{"a session this page does not know run past its length", `{kind: 'session-overflow', node: 'lap-le-01', session: 's000009@20260309', occurrences: ['a000003@20260308T230040.000Z'],
				items: [{occurrence: 'a000003@20260308T230040.000Z', announcement: 'a000003', title: 'Lịch cắt điện', start: '2026-03-09T06:00:40+07:00'}]}`,
				"Cụm loa lap-le-01: buổi “s000009” vào Thứ Hai, 09/03 phát quá thời lượng tối đa. Hãy bớt hoặc chuyển bản tin sang buổi khác, hoặc tăng số phút tối đa của buổi."},
			{"a session run past its length, no day", `{kind: 'session-overflow', node: 'lap-le-01', session: 's000001', occurrences: []}`,
				"Cụm loa lap-le-01: buổi “Buổi sáng” phát quá thời lượng tối đa. Hãy bớt hoặc chuyển bản tin sang buổi khác, hoặc tăng số phút tối đa của buổi."},
			{"an overlap 40 s into the minute", `{kind: 'overlap', node: 'lap-le-01', occurrences: ['a000003@20260308T230040.000Z']}`,
				"Cụm loa lap-le-01: trùng giờ với một bản tin cùng mức ưu tiên lúc 06:00:40 Thứ Hai, 09/03; bản sau phải chờ bản trước phát xong."},
			{"a play 40 s into its session, named", `{kind: 'session-overflow', node: 'lap-le-01', session: 's000001@20260309', occurrences: ['a000003@20260308T230040.000Z'],
				items: [{occurrence: 'a000003@20260308T230040.000Z', announcement: 'a000003', title: 'Lịch cắt điện', start: '2026-03-09T06:00:40+07:00'}]}`,
				"Cụm loa lap-le-01: buổi “Buổi sáng” (06:00, tối đa 1 phút) vào Thứ Hai, 09/03 phát quá thời lượng; bản tin phát lố giờ: “Lịch cắt điện” (06:00:40). Hãy bớt hoặc chuyển bản tin sang buổi khác, hoặc tăng số phút tối đa của buổi."},
		}
		for _, tc := range cases {
			got := eval[string](t, b, `Promise.all([import('/static/js/views/programme.js'), import('/static/js/i18n.js')]).then(async ([p, i]) => {
				await i.loadLanguage('vi');
				return p.conflictText(`+tc.conflict+`, `+sessions+`, new Map(), 'new');
			})`)
			if got != tc.want {
				t.Errorf("%s: says\n%q, want\n%q", tc.name, got, tc.want)
			}
		}
	})

	// In English the console said "1 clusters will sound at once" and
	// "1 clusters report sounding but have a fault": a count of one must
	// take the singular, Vietnamese is unchanged.
	t.Run("English counts of one are singular", func(t *testing.T) {
		cases := []struct {
			key  string
			vars string
			vi   string
			en   string
		}{
			{"emergency.will_sound", `{n: 1}`, "1 cụm loa sẽ phát ngay, âm lượng tối đa", "1 cluster will sound at once, full volume"},
			{"emergency.will_sound", `{n: '1.000'}`, "1.000 cụm loa sẽ phát ngay, âm lượng tối đa", "1.000 clusters will sound at once, full volume"},
			{"cap.clusters", `{n: 0}`, "0 cụm loa", "0 clusters"},
			{"emergency.online_now", `{online: 1, all: 1}`, "", "1 of 1 cluster is online; offline ones play when back, if still in time."},
			{"emergency.online_now", `{online: 2, all: 3}`, "", "2 of 3 clusters are online; offline ones play when back, if still in time."},
			{"map.unplaced", `{n: 1}`, "", "1 cluster has no position and is not on the map."},
		}
		for _, tc := range cases {
			got := eval[[]string](t, b, fmt.Sprintf(`import('/static/js/i18n.js').then(async (i) => {
				await i.loadLanguage('vi');
				const vi = i.t(%[1]q, %[2]s);
				await i.loadLanguage('en');
				const en = i.t(%[1]q, %[2]s);
				await i.loadLanguage('vi');
				return [vi, en];
			})`, tc.key, tc.vars))
			if len(got) != 2 || (tc.vi != "" && got[0] != tc.vi) || got[1] != tc.en {
				t.Errorf("t(%q, %s) = %q, want %q and %q", tc.key, tc.vars, got, tc.vi, tc.en)
			}
		}
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type session struct {
	Name  string `json:"name"`
	Start string `json:"start"`
}

// eval is MustEval for a subtest.
func eval[T any](t *testing.T, b *Browser, expr string) T {
	t.Helper()
	v, err := Eval[T](b, expr)
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	return v
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b} }

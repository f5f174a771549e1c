package console

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
)

// TestStandingContentFromTheLibrary: the officer of Xã Lập Lễ keeps the
// flood warning on the commune's clusters from the library; the library
// says when the cluster has it; the emergency form offers it first, as
// content that sounds at once; and the officer can stop keeping it.
func TestStandingContentFromTheLibrary(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{ContentSpread: time.Millisecond})
	flood := c.Upload("canh-bao-lu.wav", rig.ToneWAV(660, 2*time.Second, 16000, 1))
	rig.Eventually(t, minWait, "the cluster online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/library", `document.querySelector('#library-table')`)
	row := `#library-table tr[data-content="` + flood.ID + `"]`
	if got := MustEval[string](b, text("#standing")); !contains(got, "Lưu sẵn trên cụm loa cho phát khẩn cấp", "Chưa có nội dung nào được lưu sẵn") {
		t.Errorf("the standing panel before: %q", got)
	}
	b.Do("keep the warning on the commune's clusters", chromedp.Click(chromedp.CSS(row+` button[data-standing]`)))
	b.Wait("the warning kept", `document.querySelector('`+row+`').dataset.standing === 'yes' && document.querySelector('#standing-list li[data-content="`+flood.ID+`"]')`, 10*time.Second)
	if got := MustEval[string](b, text(row+` button[data-standing]`)); got != "Bỏ lưu sẵn" {
		t.Errorf("the row's button now reads %q", got)
	}
	// The emergency chimes are on every cluster anyway.
	chimes := `[...document.querySelectorAll('#library-table tbody tr')].filter(r => r.innerText.includes('Chuông'))`
	if got := MustEval[[]string](b, chimes+`.map(r => r.lastElementChild.innerText)`); len(got) != 2 || got[0] != "Luôn có trên mọi cụm loa" || got[1] != got[0] {
		t.Errorf("the chimes' standing cells read %q", got)
	}

	rig.Eventually(t, minWait, "the cluster has the warning", func() bool {
		var l struct{ Standing []struct{ Ready int } }
		c.MustDo("GET", "/api/v1/content/standing", nil, &l)
		return len(l.Standing) == 1 && l.Standing[0].Ready == 1
	})
	b.Go("#/overview", `document.querySelector('#count-online')`)
	b.Go("#/library", `document.querySelector('#standing-list')`)
	if got := MustEval[string](b, text(`#standing-list li[data-content="`+flood.ID+`"]`)); !contains(got, "canh-bao-lu", "Xã Lập Lễ", "Có sẵn trên 1/1 cụm loa") {
		t.Errorf("the standing list says %q", got)
	}
	b.Shot("26-luu-san")

	b.Go("#/emergency", `document.querySelector('#em-content[data-standing="loaded"]')`)
	b.Do("choose stored audio", chromedp.SetValue(chromedp.CSS(`#em-how`), "content"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#em-how').dispatchEvent(new Event('change'))`))
	if got := MustEval[string](b, `(() => { const o = document.querySelector('#em-content option[data-standing]'); return o.parentElement.label + ' | ' + o.value + ' | ' + o.textContent; })()`); !contains(got, "Lưu sẵn trên cụm loa — phát ngay", flood.ID, "có sẵn trên 1/1 cụm loa") {
		t.Errorf("the emergency form offers %q, want the kept warning first", got)
	}

	// A drill with it: the confirmation says the cluster has it, and the
	// board does not say it was fetched.
	b.Do("a drill with the kept warning",
		chromedp.Click(chromedp.CSS(`#em-drill`)),
		chromedp.Click(chromedp.CSS(`#em-area-11527`)),
		chromedp.SetValue(chromedp.CSS(`#em-content`), flood.ID),
		chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open] #em-confirm')`, 5*time.Second)
	if got := MustEval[string](b, text("#em-confirm-ready")); got != "Nội dung đã lưu sẵn trên 1/1 cụm loa: các cụm loa này phát ngay." {
		t.Errorf("the confirmation says %q", got)
	}
	confirmDanger(b, "send it")
	b.Wait("the cluster sounding", text(`[data-count="sounding"] .stat`)+` === '1' || `+text(`[data-count="completed"] .stat`)+` === '1'`, 20*time.Second)
	if n := MustEval[int](b, `document.querySelectorAll('#ack-board .fetched').length`); n != 0 {
		t.Errorf("the board says %d clusters fetched the kept warning", n)
	}

	b.Go("#/library", `document.querySelector('#library-table')`)
	b.Do("stop keeping it", chromedp.Click(chromedp.CSS(row+` button[data-standing]`)))
	b.Wait("no longer kept", `document.querySelector('`+row+`').dataset.standing === 'no' && !document.querySelector('#standing-list')`, 10*time.Second)
	b.CheckAccessible("#/library")
}

// TestStandingContentForChosenAreas: a district officer keeps a storm
// surge warning on the clusters of one commune of the district, chosen in
// the library; the island district that keeps it already (set by the
// province, outside the officer's sight) keeps it still. Clearing the
// choice stops keeping it in the officer's areas only.
func TestStandingContentForChosenAreas(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "31")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.CreateArea("11530", "Xã Tam Hưng", "311")
	c.CreateArea("313", "Huyện Cát Hải", "31")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-thuy-nguyen", "password": officerPassword, "role": "district", "area": "311"}, nil)
	surge := c.Upload("canh-bao-nuoc-dang.wav", rig.ToneWAV(550, 2*time.Second, 16000, 1))
	c.MustDo("PUT", "/api/v1/content/"+surge.ID+"/standing", map[string]any{"areas": []string{"313"}}, nil)
	keptIn := func() []string {
		var l struct {
			Standing []struct {
				Content string
				Areas   []string
			}
		}
		c.MustDo("GET", "/api/v1/content/standing", nil, &l)
		for _, s := range l.Standing {
			if s.Content == surge.ID {
				return s.Areas
			}
		}
		return nil
	}

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-thuy-nguyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	b.Go("#/library", `document.querySelector('#library-table')`)
	pick := `#library-table details[data-standing="` + surge.ID + `"]`
	if got := MustEval[string](b, text(pick+` summary`)); got != "Lưu sẵn trên cụm loa" {
		t.Errorf("the picker reads %q", got)
	}
	if got := MustEval[[]string](b, `[...document.querySelectorAll('`+pick+` input')].map(i => i.value + (i.checked ? '+' : ''))`); !slices.Equal(got, []string{"311", "11527", "11530"}) {
		t.Errorf("the picker offers %q, want the district and its communes, none chosen", got)
	}
	b.Do("keep it on Lập Lễ's clusters",
		chromedp.Click(chromedp.CSS(pick+` summary`)),
		chromedp.Click(chromedp.CSS(`#keep-`+surge.ID[:16]+`-11527`)),
		chromedp.Click(chromedp.CSS(`[data-standing-save="`+surge.ID+`"]`)))
	b.Wait("the warning kept", `document.querySelector('#standing-list li[data-content="`+surge.ID+`"]') && document.querySelector('#standing-list li[data-content="`+surge.ID+`"]').innerText.includes('Xã Lập Lễ')`, 10*time.Second)
	if got := keptIn(); !slices.Equal(got, []string{"11527", "313"}) {
		t.Errorf("kept in %q, want the island district still and Lập Lễ", got)
	}
	if got := MustEval[string](b, text(`#standing-list li[data-content="`+surge.ID+`"]`)); !contains(got, "Xã Lập Lễ và 1 địa bàn khác") {
		t.Errorf("the standing list says %q, want Lập Lễ by name and the district it cannot see counted", got)
	}
	if got := MustEval[string](b, text(pick+` summary`)); got != "Đổi địa bàn lưu sẵn" {
		t.Errorf("the picker then reads %q", got)
	}
	b.Do("open the picker", chromedp.Click(chromedp.CSS(pick+` summary`)))
	b.Shot("27-luu-san-chon-dia-ban")
	b.Do("close it", chromedp.Click(chromedp.CSS(pick+` summary`)))

	b.Do("clear the choice",
		chromedp.Click(chromedp.CSS(pick+` summary`)),
		chromedp.Click(chromedp.CSS(`#keep-`+surge.ID[:16]+`-11527`)),
		chromedp.Click(chromedp.CSS(`[data-standing-save="`+surge.ID+`"]`)))
	// Kept in Cát Hải only, it no longer reaches the district: not listed.
	b.Wait("no longer kept in Lập Lễ", `document.querySelector('`+pick+` summary').innerText === 'Lưu sẵn trên cụm loa' && !document.querySelector('#standing-list li[data-content="`+surge.ID+`"]')`, 10*time.Second)
	if got := keptIn(); !slices.Equal(got, []string{"313"}) {
		t.Errorf("kept in %q after clearing, want the island district only", got)
	}
	b.CheckAccessible("#/library")
}

// heldLink is a cluster's HTTP link on which downloads of one content wait
// until released, as over a slow 4G link.
type heldLink struct {
	content string
	release chan struct{}
}

func (l *heldLink) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, l.content) {
		select {
		case <-l.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestBoardSaysClustersAreDownloading: an alert whose message the cluster
// does not have: while it downloads it (sounding its chime meanwhile), the
// board says the cluster has the alert and is downloading its audio; once
// the message can play, that goes.
func TestBoardSaysClustersAreDownloading(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	link := &heldLink{content: alarm.ID, release: make(chan struct{})}
	n := rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{Tune: func(ac *agent.Config) { ac.HTTPClient = &http.Client{Transport: link} }})
	// With the chimes every cluster keeps: without them the alert would
	// wait for its message like a bulletin.
	c.AwaitKept(n, minWait)
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"11527"}, "repeat": 1, "drill": true}, &em)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/emergency/"+em.ID, `document.querySelector('#ack-board')`)
	b.Wait("the board says it downloads", `!document.querySelector('#em-fetching').hidden`, 20*time.Second)
	if got := MustEval[string](b, text("#em-fetching")); got != "1 cụm loa đã nhận lệnh và đang tải nội dung về: chuông báo phát ngay, bản tin phát khi đã tải đủ để phát liền mạch." {
		t.Errorf("the board says %q", got)
	}
	// The cluster began with its chime: its row says the message is
	// still on its way.
	b.Wait("the cluster's row says it played the chime", `document.querySelector('tr[data-node="lap-le-01"] .fetching')`, 20*time.Second)
	if got := MustEval[string](b, text(`tr[data-node="lap-le-01"] .fetching`)); got != "Đã phát chuông báo; đang tải bản tin về" {
		t.Errorf("the cluster's row says %q", got)
	}
	// The message comes after the chime's end: the cluster plays it late.
	var chime loaxa.Content
	c.MustDo("GET", "/api/v1/content/"+em.OpeningChime, nil, &chime)
	chimeEnd := em.Areas[0].Start.Add(time.Duration(chime.DurationMS) * time.Millisecond)
	rig.Eventually(t, minWait, "the chime has ended", func() bool { return time.Now().After(chimeEnd) })
	close(link.release)
	b.Wait("the cluster sounding, the note gone", `document.querySelector('#em-fetching').hidden && (`+
		text(`[data-count="sounding"] .stat`)+` === '1' || `+text(`[data-count="completed"] .stat`)+` === '1')`, 20*time.Second)
	b.Wait("the row says it fetched the message", `!document.querySelector('tr[data-node="lap-le-01"] .fetching') && document.querySelector('tr[data-node="lap-le-01"] .fetched')`, 20*time.Second)
	// Played once, after the chime's end: once it has played, the board
	// says it began its message out of step with clusters that had it.
	b.Wait("the board says when the message began", `document.querySelector('#em-timing-message') && document.querySelector('tr[data-node="lap-le-01"] .off-step')`, 20*time.Second)
	if got := MustEval[string](b, text("#em-timing-message")); got != "Bản tin đến sau chuông báo ở 1 cụm loa: 0 cụm phát đồng bộ với các cụm đã có bản tin (vào đầu một lần lặp), 1 cụm phát lệch nhịp (có thể nghe vọng)" {
		t.Errorf("the board says %q", got)
	}
	if got := MustEval[string](b, text(`tr[data-node="lap-le-01"] .off-step`)); !strings.Contains(got, "lệch nhịp với các cụm khác") {
		t.Errorf("the cluster's row says %q", got)
	}
}

// warning is a flood warning Xã Lập Lễ keeps on its cluster.
const warning = "Nước sông đang lên nhanh. Bà con vùng bãi di chuyển lên chỗ cao."

// keptWarningAtLapLe starts a controller where Xã Lập Lễ (one cluster)
// keeps warning on its clusters, and a browser signed in as its officer.
func keptWarningAtLapLe(t *testing.T) *Browser {
	t.Helper()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	c.CreateNode("lap-le-01", "11527")
	var kept loaxa.Content
	c.MustDo("POST", "/api/v1/content/tts", map[string]string{"text": warning}, &kept)
	c.MustDo("PUT", "/api/v1/content/"+kept.ID+"/standing", map[string]any{"areas": []string{"11527"}}, nil)
	b := StartBrowser(t)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	return b
}

// TestTypedKeptWarningSaysSo: an officer types, word for word, a warning
// kept on the commune's clusters; the confirmation says the clusters have
// it (the same words make the same content), not that they must download
// it.
func TestTypedKeptWarningSaysSo(t *testing.T) {
	t.Parallel()
	b := keptWarningAtLapLe(t)
	defer b.checkErrors()
	b.Go("#/emergency", `document.querySelector('#em-content[data-standing="loaded"]')`)
	b.Do("type the warning as kept",
		chromedp.Click(chromedp.CSS(`#em-drill`)),
		chromedp.Click(chromedp.CSS(`#em-area-11527`)),
		chromedp.SendKeys(chromedp.CSS(`#em-text`), warning),
		chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open] #em-confirm')`, 5*time.Second)
	if got := MustEval[string](b, text("#em-confirm-ready")); got != "Nội dung đã lưu sẵn trên 0/1 cụm loa: các cụm loa này phát ngay." {
		t.Errorf("the confirmation says %q", got)
	}
}

// TestTypedAlertAfterAKeptRecording: a commune officer types the details
// of a warning and has the commune's kept warning play first: the form
// offers it, the confirmation says so, and the cluster plays the kept
// recording, then the typed words.
func TestTypedAlertAfterAKeptRecording(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	n := rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{ContentSpread: time.Millisecond})
	kept := c.Upload("canh-bao-de.wav", rig.ToneWAV(540, time.Second, 16000, 1))
	c.MustDo("PUT", "/api/v1/content/"+kept.ID+"/standing", map[string]any{"areas": []string{"11527"}}, nil)
	rig.Eventually(t, minWait, "the cluster online with the kept warning", func() bool {
		return c.Node("lap-le-01").Status.State == loaxa.NodeOnline && n.Agent.Status().DesiredVersion > 0 && len(n.Agent.Status().ContentMissing) == 0
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/emergency", `document.querySelector('#em-content[data-standing="loaded"]')`)
	if got := MustEval[string](b, `(() => { const o = document.querySelector('#em-intro option[data-standing]'); return o.parentElement.label + ' | ' + o.value; })()`); !contains(got, "Lưu sẵn trên cụm loa — phát ngay", kept.ID) {
		t.Errorf("the intro offers %q, want the kept warning first", got)
	}
	const details = "Đê tả sông Văn Úc có nguy cơ vỡ. Bà con thôn Đông di chuyển lên trường học ngay."
	b.Do("type the details after the kept warning",
		chromedp.Click(chromedp.CSS(`#em-drill`)),
		chromedp.Click(chromedp.CSS(`#em-area-11527`)),
		chromedp.SendKeys(chromedp.CSS(`#em-text`), details),
		chromedp.SetValue(chromedp.CSS(`#em-intro`), kept.ID),
		chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open] #em-confirm')`, 5*time.Second)
	if got := MustEval[string](b, text("#em-confirm-intro")); got != "Phát trước bản ghi «"+kept.Title+"», rồi đọc văn bản." {
		t.Errorf("the confirmation says %q", got)
	}
	confirmDanger(b, "send it")
	b.Wait("the board", `location.hash.startsWith('#/emergency/e')`, 10*time.Second)
	id := MustEval[string](b, `decodeURIComponent(location.hash.slice('#/emergency/'.length))`)
	var em loaxa.Emergency
	c.MustDo("GET", "/api/v1/emergency/"+id, nil, &em)
	if em.IntroContentID != kept.ID || em.Text != details || !em.Drill {
		t.Errorf("sent intro %q, text %q, drill %v; want the kept warning, then the typed words, as a drill", em.IntroContentID, em.Text, em.Drill)
	}
	rig.Eventually(t, 30*time.Second, "the cluster played it to the end", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+id, nil, &rep)
		return rep.Summary.Completed == 1
	})
}

// TestConfirmationWaitsForKeptContent: the list of content kept on the
// clusters is read as the emergency form opens. An officer who sends at
// once, before its answer came, gets a confirmation that waits for it (a
// moment at most) and says the clusters have the message, not that they
// must download it. The browser holds the list's answer (Chromium's Fetch
// interception) until the send was pressed.
func TestConfirmationWaitsForKeptContent(t *testing.T) {
	t.Parallel()
	b := keptWarningAtLapLe(t)
	defer b.checkErrors()
	paused, release := b.HoldResponses(`*/api/v1/content/standing*`)
	b.Do("open the emergency form", chromedp.Evaluate[chromedp.Void](`location.hash = '#/emergency'`))
	held := b.AwaitHeld(paused, "the emergency form did not read the kept content")
	b.Wait("the form", `document.querySelector('#em-form #em-text')`, 15*time.Second)
	b.Do("type the kept warning and send",
		chromedp.Click(chromedp.CSS(`#em-drill`)),
		chromedp.Click(chromedp.CSS(`#em-area-11527`)),
		chromedp.SendKeys(chromedp.CSS(`#em-text`), warning),
		chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the form says it checks the kept content", `document.querySelector('#em-checking')`, 5*time.Second)
	if MustEval[bool](b, `!!document.querySelector('dialog[open] #em-confirm')`) {
		t.Error("the confirmation opened before the kept content was known")
	}
	if err := release(held); err != nil {
		t.Fatalf("let the kept content's answer go: %v", err)
	}
	b.Wait("the confirmation", `document.querySelector('dialog[open] #em-confirm')`, 5*time.Second)
	if got := MustEval[string](b, text("#em-confirm-ready")); got != "Nội dung đã lưu sẵn trên 0/1 cụm loa: các cụm loa này phát ngay." {
		t.Errorf("the confirmation says %q", got)
	}
}

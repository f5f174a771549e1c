package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol/nodeaudio"
)

// runLive runs "controller live": speaks a WAV file, or raw PCM from a
// file or standard input (a local microphone through arecord), live to
// areas, in real time, through a running controller (docs/live.md). It
// reads a microphone's PCM from stdin and tells the speaker on stdout and
// stderr.
func runLive(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const usage = `usage: controller live --url http://localhost:8080 --areas 31[,32] (--wav FILE | --pcm FILE|-) [--priority priority|emergency] [--title T] [--drill] [--volume 1-15] [--ca PEM]   (token in LOAXA_TOKEN or --token)
  the local microphone: arecord -q -f S16_LE -r 16000 -c 1 -t raw | controller live --pcm - …`
	fs := flag.NewFlagSet("live", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", os.Getenv("LOAXA_URL"), "base URL of the running controller (env LOAXA_URL)")
	token := fs.String("token", "", "bearer token (better: env LOAXA_TOKEN, which a process list does not show)")
	areas := fs.String("areas", "", "comma-separated target areas")
	wav := fs.String("wav", "", "node-format WAV to speak: 16 kHz mono, 16-bit PCM or IMA ADPCM (sox in.wav -r 16000 -c 1 -b 16 out.wav)")
	raw := fs.String("pcm", "", "raw 16 kHz mono signed 16-bit little-endian PCM to speak, - for standard input (a microphone: arecord -q -f S16_LE -r 16000 -c 1 -t raw); the call ends when it does")
	prio := fs.String("priority", "priority", "priority or emergency")
	title := fs.String("title", "", "title shown on nodes' status")
	drill := fs.Bool("drill", false, "an exercise (diễn tập): marked as such to the nodes, in their events, the call's record and the audit log")
	volume := fs.Int("volume", 0, "level 1–15 every node plays the call at whatever its own volume (e.g. 3 for a quiet drill); 0: each node's own")
	ca := fs.String("ca", "", "PEM certificate to trust for an HTTPS controller")
	if err := fs.Parse(args); err != nil || *url == "" || *areas == "" || (*wav == "") == (*raw == "") {
		fmt.Fprintln(stderr, usage)
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for
		}
		return 2
	}
	tok, err := liveToken(*token, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "controller live:", err)
		return 2
	}
	pcm, length, closeSource, err := liveSource(*wav, *raw, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "controller live:", err)
		return 2
	}
	defer closeSource()
	client := http.DefaultClient
	if *ca != "" {
		cfg, err := app.TrustPEM(*ca)
		if err != nil {
			fmt.Fprintln(stderr, "controller live:", err)
			return 2
		}
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	call, err := liveclient.Dial(ctx, liveclient.Options{
		URL: *url, Token: tok, Areas: strings.Split(*areas, ","), Priority: *prio, Title: *title, Drill: *drill, Volume: *volume, Client: client,
		OnStatus: speakerTold(failingAreas(stderr), heldBehindAlerts(stderr), cutOffByAlerts(stderr)),
	})
	if err != nil {
		fmt.Fprintln(stderr, "controller", err)
		return 1
	}
	what := "On air"
	if *drill {
		what = "On air as a DRILL (diễn tập)"
	}
	// The areas the controller took: it leaves out repeats and areas
	// inside another of them.
	to := strings.Join(call.OnAir().Areas, ",")
	if length > 0 {
		fmt.Fprintf(stdout, "%s to %s: %s of audio.\n", what, to, length.Round(time.Millisecond))
	} else {
		fmt.Fprintf(stdout, "%s to %s until the input ends (Ctrl-C ends the call).\n", what, to)
	}
	if err := call.Stream(ctx, pcm); err != nil && !errors.Is(err, liveclient.ErrEnded) {
		fmt.Fprintln(stderr, "controller", err)
	}
	endCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := call.End(endCtx)
	if err != nil {
		fmt.Fprintln(stderr, "controller", err)
		return 1
	}
	how := st.Reason
	if st.CutBy != "" {
		how += " by " + st.CutBy
	}
	fmt.Fprintf(stdout, "Call %s ended: %s, %s.\n", st.Call, loaxa.Count(int(st.Frames), "frame", "frames"), how)
	return 0
}

// liveToken returns the token a call signs in with: --token, else
// LOAXA_TOKEN. Without either it says how to get one, before dialling: the
// controller would only answer that an Authorization header is missing.
func liveToken(flagToken string, getenv func(string) string) (string, error) {
	if flagToken != "" {
		return flagToken, nil
	}
	if tok := getenv("LOAXA_TOKEN"); tok != "" {
		return tok, nil
	}
	return "", errors.New("no token: sign in with POST /api/v1/auth/token (as a user who may speak to the areas) and set LOAXA_TOKEN to the token it answers, or give --token")
}

// failingAreas returns an OnStatus that tells the speaker on w when areas
// of the call stop being reached, and when they are reached again.
func failingAreas(w io.Writer) func(liveclient.Status) {
	failing := false
	return func(st liveclient.Status) {
		switch {
		case st.State != "on_air":
		case len(st.FailingAreas) > 0:
			failing = true
			fmt.Fprintf(w, "Not reaching area %s: %s. The call goes on for the other areas.\n", strings.Join(st.FailingAreas, ","), st.Detail)
		case failing:
			failing = false
			fmt.Fprintln(w, "Every area is reached again.")
		}
	}
}

// speakerTold returns an OnStatus that calls each of tell in turn.
func speakerTold(tell ...func(liveclient.Status)) func(liveclient.Status) {
	return func(st liveclient.Status) {
		for _, f := range tell {
			f(st)
		}
	}
}

// cutOffByAlerts returns an OnStatus that tells the speaker on w, as it
// happens, on how many clusters an emergency alert (or another higher
// level) cut the call off: they do not play the rest of it, and a speaker
// talking on would not know. Cut off on every one of the call's clusters
// (the status' nodes), nobody hears it: the speaker is told to end it.
func cutOffByAlerts(w io.Writer) func(liveclient.Status) {
	said := 0
	return func(st liveclient.Status) {
		if st.State != "on_air" || st.Preempted == said {
			return
		}
		said = st.Preempted
		if st.Nodes > 0 && st.Preempted >= st.Nodes {
			fmt.Fprintf(w, "Cuộc gọi bị bản tin khẩn cấp cắt trên cả %d cụm loa: không còn ai nghe được, hãy kết thúc cuộc gọi (Ctrl-C); an emergency alert cut the call off on all %d clusters: nobody hears it any more, end the call (Ctrl-C).\n", st.Preempted, st.Preempted)
			return
		}
		fmt.Fprintf(w, "Cuộc gọi bị bản tin khẩn cấp cắt trên %d cụm loa: an emergency alert cut the call off on %d clusters; they do not play the rest of it.\n", st.Preempted, st.Preempted)
	}
}

// heldBehindAlerts returns an OnStatus that tells the speaker on w, as it
// happens, which alerts on air hold the call back on how many clusters,
// and how many of those joined the call after it or missed it.
func heldBehindAlerts(w io.Writer) func(liveclient.Status) {
	seen := map[string]liveclient.Hold{}
	return func(st liveclient.Status) {
		if st.State != "on_air" {
			return
		}
		for _, h := range st.Held {
			was := seen[h.Alert]
			seen[h.Alert] = h
			alert := holdName(h)
			if h.Waiting > 0 && h.Waiting != was.Waiting {
				fmt.Fprintf(w, "Đang chờ bản tin khẩn cấp phát xong: alert %s still plays on %d clusters; they play the call if it ends within 5 s of the call's start.\n", alert, h.Waiting)
			}
			if h.Joined > was.Joined {
				fmt.Fprintf(w, "%d clusters held behind alert %s joined the call after it (%d in all).\n", h.Joined-was.Joined, alert, h.Joined)
			}
			if h.Missed > was.Missed {
				fmt.Fprintf(w, "%d clusters held behind alert %s missed the call: the alert outlasted the call's 5 s start window (%d in all).\n", h.Missed-was.Missed, alert, h.Missed)
			}
		}
	}
}

// holdName names the alert of h as officers know it: its title, then its
// id; the id alone when the controller did not find its title.
func holdName(h liveclient.Hold) string {
	if h.Title == "" {
		return h.Alert
	}
	return fmt.Sprintf("%q (%s)", h.Title, h.Alert)
}

// liveSource opens what a call speaks: a node-format WAV file, or raw PCM
// (16 kHz mono s16le) from a file or, for "-", from stdin. It returns the
// PCM, its length (0: not known, as for a microphone) and what closes it.
func liveSource(wav, raw string, stdin io.Reader) (io.Reader, time.Duration, func(), error) {
	if raw == "-" {
		return stdin, 0, func() {}, nil
	}
	name := cmp.Or(wav, raw)
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, err
	}
	if raw != "" {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("%s: %w", name, err)
		}
		return f, time.Duration(st.Size()/2) * time.Second / nodeaudio.SampleRate, func() { f.Close() }, nil
	}
	pcm, err := nodeaudio.NewReader(f)
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%s: %w (convert it: sox in.wav -r 16000 -c 1 -b 16 out.wav)", name, err)
	}
	return pcm, pcm.Duration(), func() { f.Close() }, nil
}

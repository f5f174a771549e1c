package http

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"loaxa.vn/protocol"
)

// liveFeeds publish a call's start and audio frames to each of its areas
// on its own: one queue and one goroutine per area, so that an area whose
// publish fails or is slow loses its own frames and nobody else's. (The
// frames went out area after area: a slow area held the others' frames
// back, and a second of one area's failures ended the call for all.) Each
// area's goroutine publishes the call's start first and its frames after
// it, so an area whose start is slow holds back only its own frames: the
// call is on air (taken) once one area took its start. (It went on air
// once every area's start was answered: one slow commune held every
// other's audio and the officer's "on air" until its publish timed out.)
//
// An area that has not taken maxDroppedFrames frames in a row is failing:
// the speaker is told (changed) and the call goes on for the others. Once
// every area is failing, or every start failed, the broker is gone: gone
// is closed and the call ends.
type liveFeeds struct {
	publish func(ctx context.Context, area string, l protocol.Live) error
	start   protocol.Live
	cancel  context.CancelFunc
	stop    chan struct{} // closed: the queued frames are dropped
	slots   chan struct{} // bounds the starts waiting for the broker at once
	wg      sync.WaitGroup

	// changed is signalled when an area begins or stops failing, or its
	// start is answered; gone is closed when every area is failing or
	// every start failed; taken is closed when the first area took its
	// start, answered when every start was answered.
	changed  chan struct{}
	gone     chan struct{}
	taken    chan struct{}
	answered chan struct{}

	mu       sync.Mutex
	feeds    []*areaFeed
	starting int   // starts not answered yet
	over     bool  // gone is closed: nothing more is counted
	goneErr  error // the last area's error when gone was closed

	// mostSent and mostDropped are what Close returns, as the frames go:
	// the list and report of the calls on air read them (Counts) without
	// waiting on the feeds' lock.
	mostSent, mostDropped atomic.Uint64
}

// areaFeed is the start and frames of one area. Its state is guarded by
// liveFeeds.mu.
type areaFeed struct {
	area  string
	queue chan protocol.Live

	starting bool  // its start is not answered yet
	startErr error // why its start was not published
	sent     uint64
	dropped  uint64
	inRow    int   // frames in a row not published
	err      error // why the last frame was not published
}

// liveFeedQueue is how many frames an area's queue holds: two seconds,
// two of the largest messages a client may send, which come at once after
// a stall of its network. A frame that finds the queue full is dropped for
// that area only: its publishing is two seconds behind. (A node holds
// 600 ms at most and skips to the newest frames, so it does not stay late.)
const liveFeedQueue = 2 * maxDroppedFrames

// liveDrainWait bounds how long the end of a call waits for the frames
// still queued to be published.
const liveDrainWait = 2 * time.Second

// errFeedBehind is a frame dropped because its area's queue was full.
var errFeedBehind = errors.New("publishing to the area is two seconds behind")

// newLiveFeeds starts a feed for each of areas, publishing start, then
// the frames, with publish.
func newLiveFeeds(ctx context.Context, areas []string, start protocol.Live, publish func(ctx context.Context, area string, l protocol.Live) error) *liveFeeds {
	ctx, cancel := context.WithCancel(ctx)
	fs := &liveFeeds{publish: publish, start: start, cancel: cancel, stop: make(chan struct{}), slots: make(chan struct{}, liveSendInflight),
		changed: make(chan struct{}, 1), gone: make(chan struct{}), taken: make(chan struct{}), answered: make(chan struct{}),
		starting: len(areas)}
	for _, a := range areas {
		f := &areaFeed{area: a, queue: make(chan protocol.Live, liveFeedQueue), starting: true}
		fs.feeds = append(fs.feeds, f)
	}
	for _, f := range fs.feeds {
		fs.wg.Add(1)
		go fs.run(ctx, f)
	}
	return fs
}

// run publishes the start to f's area, then its frames in order until its
// queue is closed or the feeds are stopped.
func (fs *liveFeeds) run(ctx context.Context, f *areaFeed) {
	defer fs.wg.Done()
	select {
	case fs.slots <- struct{}{}:
		err := fs.publish(ctx, f.area, fs.start)
		<-fs.slots
		fs.started(f, err)
	case <-fs.stop:
		return
	}
	for {
		select {
		case <-fs.stop:
			return
		default:
		}
		select {
		case l, ok := <-f.queue:
			if !ok {
				return
			}
			if fs.isOver() {
				continue
			}
			fs.count(f, fs.publish(ctx, f.area, l))
		case <-fs.stop:
			return
		}
	}
}

// started records the answer to f's start: taken (err nil) or not.
func (fs *liveFeeds) started(f *areaFeed, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.starting, f.startErr = false, err
	if fs.starting--; fs.starting == 0 {
		close(fs.answered)
	}
	if fs.over {
		return
	}
	if err == nil {
		select {
		case <-fs.taken:
		default:
			close(fs.taken)
		}
	} else if !slices.ContainsFunc(fs.feeds, func(f *areaFeed) bool { return f.starting || f.startErr == nil }) {
		fs.over, fs.goneErr = true, fmt.Errorf("start not sent to any area: %w", fs.startErrs())
		close(fs.gone)
		return
	}
	select {
	case fs.changed <- struct{}{}:
	default:
	}
}

// startErrs joins why each start not published failed; fs.mu is held.
func (fs *liveFeeds) startErrs() error {
	var errs []error
	for _, f := range fs.feeds {
		if f.startErr != nil {
			errs = append(errs, fmt.Errorf("area %s: %w", f.area, f.startErr))
		}
	}
	return errors.Join(errs...)
}

func (fs *liveFeeds) isOver() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.over
}

// Send queues frame l for every area.
func (fs *liveFeeds) Send(l protocol.Live) {
	for _, f := range fs.feeds {
		select {
		case f.queue <- l:
		default:
			fs.count(f, fmt.Errorf("frame %d: %w", l.Seq, errFeedBehind))
		}
	}
}

// count records the fate of one of f's frames: published (err nil) or
// not.
func (fs *liveFeeds) count(f *areaFeed, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.over {
		return
	}
	wasFailing := f.inRow >= maxDroppedFrames
	if err == nil {
		f.sent++
		f.inRow, f.err = 0, nil
		if f.sent > fs.mostSent.Load() {
			fs.mostSent.Store(f.sent)
		}
	} else {
		f.dropped++
		f.inRow++
		f.err = err
		if f.dropped > fs.mostDropped.Load() {
			fs.mostDropped.Store(f.dropped)
		}
	}
	if failing := f.inRow >= maxDroppedFrames; failing == wasFailing {
		return
	}
	if !slices.ContainsFunc(fs.feeds, func(f *areaFeed) bool { return f.inRow < maxDroppedFrames }) {
		fs.over, fs.goneErr = true, fmt.Errorf("%d frames in a row not published: area %s: %w", f.inRow, f.area, err)
		close(fs.gone)
		return
	}
	select {
	case fs.changed <- struct{}{}:
	default:
	}
}

// Failing returns the areas the call does not reach now, and why: their
// start not answered yet or not published, or maxDroppedFrames frames in
// a row not published.
func (fs *liveFeeds) Failing() (areas []string, why error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var errs []error
	for _, f := range fs.feeds {
		var err error
		switch {
		case f.starting:
			err = fmt.Errorf("area %s: start not yet taken by the broker", f.area)
		case f.startErr != nil:
			err = fmt.Errorf("area %s: start not sent: %w", f.area, f.startErr)
		case f.inRow >= maxDroppedFrames:
			err = fmt.Errorf("area %s: %d frames in a row not published: %w", f.area, f.inRow, f.err)
		default:
			continue
		}
		areas = append(areas, f.area)
		errs = append(errs, err)
	}
	return areas, errors.Join(errs...)
}

// Counts returns the frames published so far to the area that got most,
// and not published to the area that missed most: what Close returns, while
// the call runs. (A broker gone stops the counting, as it does Close's.)
func (fs *liveFeeds) Counts() (sent, dropped uint64) {
	return fs.mostSent.Load(), fs.mostDropped.Load()
}

// GoneErr says why gone was closed.
func (fs *liveFeeds) GoneErr() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.goneErr
}

// Close stops the feeds and waits for them: with drain, what is queued is
// published first (the speaker stopped: their last words go out); without
// it, it is dropped (a cut). It returns the frames published to the area
// that got most, and not published to the area that missed most.
func (fs *liveFeeds) Close(drain bool) (sent, dropped uint64) {
	if drain {
		for _, f := range fs.feeds {
			close(f.queue)
		}
		// A publish that hangs does not hold the end back: frames older
		// than the nodes' frame timeout are of no use anyway.
		t := time.AfterFunc(liveDrainWait, fs.cancel)
		defer t.Stop()
	} else {
		close(fs.stop)
	}
	fs.wg.Wait()
	fs.cancel()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.feeds {
		sent, dropped = max(sent, f.sent), max(dropped, f.dropped)
	}
	return sent, dropped
}

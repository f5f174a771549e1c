package cap

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPoll is how often feeds are polled unless configured otherwise:
// the "at least every 60 s".
const DefaultPoll = time.Minute

// Poller polls CAP feeds: each URL answers either one CAP alert, or an
// Atom feed whose entries link to CAP alerts (a link of type
// application/cap+xml, else the entry's alternate or only link). Every
// alert it finds goes to Handle, which de-duplicates; entries already
// handled (by id and updated time) are not fetched again.
//
// Each feed is polled on its own, and one poll lasts at most Interval
// (what it did not reach is tried at the next), so a feed that hangs does
// not keep the others from being polled every Interval.
type Poller struct {
	URLs     []string
	Interval time.Duration
	Client   *http.Client
	// Handle acts on one alert document from feed. An error that wraps
	// ErrRefused or ErrInvalid refuses the alert for what it is: an Atom
	// entry that brought it is not fetched again. Any other error is
	// taken as passing (the store busy, the broker away): the entry is
	// handed again at the next poll, and the poll counts as failed.
	Handle func(ctx context.Context, raw []byte, feed string) error
	Logger *slog.Logger
	// AlertHosts are the hosts, besides each feed's own, that an Atom
	// entry may link to and a feed or an alert may redirect to: "host"
	// (any port) or "host:port". A link or redirect elsewhere is not
	// followed (ErrForeignLink): a feed, or anyone who changes it on a
	// plain HTTP link, must not make the controller GET its own API, the
	// cloud's metadata address or another internal service.
	AlertHosts []string
	// Internal says whether an address is of the controller's own
	// networks (loopback, private, link-local, ...), where an entry's
	// link may lead only when the feed itself is there; nil:
	// InternalAddr. Tests set it, their servers all being on loopback.
	Internal func(netip.Addr) bool

	initOnce sync.Once
	// guarded is Client with the dial guard (dialGuard), when Client's
	// transport is an *http.Transport (or the default).
	guarded *http.Client

	mu     sync.Mutex
	seen   map[string]bool        // feed URL + Atom entry id + updated
	status map[string]*FeedStatus // by URL

	metricsOnce sync.Once
	polls       *prometheus.CounterVec
	lastOK      *prometheus.GaugeVec
	refused     *prometheus.CounterVec
}

// Collectors returns the poller's metrics, one series per feed (its
// address without credentials or query): loaxa_cap_feed_polls_total by
// result (ok, error) and loaxa_cap_feed_last_success_seconds, so that a
// feed unreachable for an hour before a typhoon is seen on a dashboard,
// not only in the log; loaxa_cap_feed_links_refused_total counts the
// links and redirects not followed because they leave the feed's host.
func (p *Poller) Collectors() []prometheus.Collector {
	p.initMetrics()
	return []prometheus.Collector{p.polls, p.lastOK, p.refused}
}

func (p *Poller) initMetrics() {
	p.metricsOnce.Do(func() {
		p.polls = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_cap_feed_polls_total", Help: "Polls of each CAP feed, by result (ok, error).",
		}, []string{"feed", "result"})
		p.lastOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "loaxa_cap_feed_last_success_seconds", Help: "When each CAP feed was last polled without an error (Unix time).",
		}, []string{"feed"})
		p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_cap_feed_links_refused_total", Help: "Links of CAP feed entries, and redirects, not followed because they leave the feed's host (and are not in --cap-alert-hosts).",
		}, []string{"feed"})
	})
}

// feedLabel is a feed's address as a metric label: without user
// information or query, which may hold credentials.
func feedLabel(feed string) string {
	u, err := url.Parse(feed)
	if err != nil {
		return "unparsable"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// ErrRefused marks an error of Handle that refuses the alert for what it
// is (not allowed, too large): it is not handed again.
var ErrRefused = errors.New("CAP alert refused")

// ErrForeignLink marks a link of an Atom entry, or a redirect, that the
// poller does not follow: not http(s), or to a host that is neither the
// feed's nor one of AlertHosts.
var ErrForeignLink = errors.New("link leaves the CAP feed's host")

// hostPort is u's host name (lower case) and port, the scheme's default
// port when u names none.
func hostPort(u *url.URL) (string, string) {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port
}

// follows says whether the poll of feed may GET u: an http(s) address on
// the feed's own host and port, or on one of AlertHosts. Addresses by
// the same name only: a link to 127.0.0.1 from a feed on a public host
// is refused whatever it would reach.
func (p *Poller) follows(feed, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %q is not an http(s) address", ErrForeignLink, feedLabel(u.String()))
	}
	host, port := hostPort(u)
	if host == "" {
		return fmt.Errorf("%w: %q names no host", ErrForeignLink, feedLabel(u.String()))
	}
	if fh, fp := hostPort(feed); host == fh && port == fp {
		return nil
	}
	for _, h := range p.AlertHosts {
		a, err := url.Parse("//" + h)
		if err != nil {
			continue
		}
		if strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), host) && (a.Port() == "" || a.Port() == port) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is on %s, not on the feed's host %s; if that host is the warning service's own, add it to --cap-alert-hosts",
		ErrForeignLink, feedLabel(u.String()), u.Host, feed.Host)
}

// init sets what was left unset.
func (p *Poller) init() {
	p.initOnce.Do(func() {
		if p.Interval <= 0 {
			p.Interval = DefaultPoll
		}
		if p.Client == nil {
			p.Client = &http.Client{Timeout: 30 * time.Second}
		}
		if p.Logger == nil {
			p.Logger = slog.New(slog.DiscardHandler)
		}
		if p.Internal == nil {
			p.Internal = InternalAddr
		}
		p.initMetrics()
		p.guarded = p.Client
		var tr *http.Transport
		switch t := p.Client.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			tr = t.Clone()
		default:
			p.Logger.Warn("cap: the feeds' HTTP transport is not an *http.Transport; entries' links are not checked for internal addresses")
			return
		}
		p.warnProxied(tr)
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if g, ok := ctx.Value(dialGuardKey{}).(*dialGuard); ok {
				if err := g.check(conn.RemoteAddr()); err != nil {
					conn.Close()
					return nil, err
				}
			}
			return conn, nil
		}
		c := *p.Client
		c.Transport = tr
		p.guarded = &c
	})
}

// warnProxied logs each feed that tr sends through a proxy
// (HTTP_PROXY, HTTPS_PROXY): the poller then connects to the proxy, not
// to the feed's or its entries' hosts, so the internal-address check
// below sees the proxy's address and cannot judge where the proxy goes.
// Where entries may lead is then the proxy's to refuse; the operator is
// told so once, at the start.
func (p *Poller) warnProxied(tr *http.Transport) {
	if tr.Proxy == nil {
		return
	}
	for _, feed := range p.URLs {
		req, err := http.NewRequest(http.MethodGet, feed, nil)
		if err != nil {
			continue // the poll says what is wrong with the address
		}
		if proxy, err := tr.Proxy(req); err == nil && proxy != nil {
			p.Logger.Warn("cap: feed reached through a proxy; its entries' addresses are checked by the proxy, not by the controller: make the proxy refuse internal addresses",
				"feed", feedLabel(feed), "proxy", proxy.Host)
		}
	}
}

// InternalAddr reports whether a is of the controller's own networks:
// loopback, private (RFC 1918, fc00::/7), link-local (the cloud's
// metadata address 169.254.169.254 among them), unspecified or
// multicast, or the shared address space of carrier-grade NAT.
func InternalAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || cgnat.Contains(a)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// dialGuardKey is the context key of a dialGuard.
type dialGuardKey struct{}

// dialGuard rides in the context of the requests for a feed's entries:
// a connection to an internal address is
// closed before anything is sent on it, unless the feed itself was
// reached on one. It is checked on the address connected to, so a host
// name that resolves elsewhere from one request to the next (DNS
// rebinding) is caught too.
type dialGuard struct {
	feed          string // label
	allowInternal bool
	internal      func(netip.Addr) bool
	refused       *prometheus.CounterVec
}

func (g *dialGuard) check(a net.Addr) error {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return fmt.Errorf("%w: connected to %s, not an IP address", ErrForeignLink, a)
	}
	if !g.allowInternal && g.internal(ap.Addr()) {
		g.refused.WithLabelValues(g.feed).Inc()
		return fmt.Errorf("%w: its host is at %s, an internal address, and the feed is not", ErrForeignLink, ap.Addr().Unmap())
	}
	return nil
}

// Run polls each feed every Interval (at once first), each feed on its
// own, until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	p.init()
	var wg sync.WaitGroup
	for _, u := range p.URLs {
		wg.Go(func() {
			t := time.NewTicker(p.Interval)
			defer t.Stop()
			for {
				p.pollFeed(ctx, u)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
	p.guarded.CloseIdleConnections()
	return nil
}

// FeedStatus is how the polls of one feed went, for the officers who
// depend on it: a warning service that went quiet before a typhoon must be
// seen, not only logged.
type FeedStatus struct {
	// Feed is the address without user information or query, which may
	// hold credentials.
	Feed string `json:"feed"`
	// LastOK is when a poll last succeeded; zero if none has.
	LastOK time.Time `json:"last_ok,omitzero"`
	// Failures counts the polls that failed since the last good one;
	// LastError and LastErrorAt say the newest's error (credentials cut).
	Failures    int       `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status returns every feed's status, in the order of URLs; a feed not
// polled yet has neither LastOK nor LastErrorAt.
func (p *Poller) Status() []FeedStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]FeedStatus, 0, len(p.URLs))
	for _, u := range p.URLs {
		if st, ok := p.status[u]; ok {
			out = append(out, *st)
		} else {
			out = append(out, FeedStatus{Feed: feedLabel(u)})
		}
	}
	return out
}

// note records the result of one poll of feed.
func (p *Poller) note(feed string, err error, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == nil {
		p.status = map[string]*FeedStatus{}
	}
	st, ok := p.status[feed]
	if !ok {
		st = &FeedStatus{Feed: feedLabel(feed)}
		p.status[feed] = st
	}
	if err == nil {
		st.LastOK, st.Failures = now, 0
		return
	}
	st.Failures++
	st.LastError, st.LastErrorAt = redactURLs(err.Error()), now
}

// urlInText finds addresses in an error message.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// redactURLs cuts user information and queries from the addresses in msg.
func redactURLs(msg string) string {
	return urlInText.ReplaceAllStringFunc(msg, func(u string) string {
		if _, err := url.Parse(u); err != nil {
			return "(address)"
		}
		return feedLabel(u)
	})
}

// Poll polls every feed once, all at once, and returns when all are done.
func (p *Poller) Poll(ctx context.Context) {
	p.init()
	var wg sync.WaitGroup
	for _, u := range p.URLs {
		wg.Go(func() { p.pollFeed(ctx, u) })
	}
	wg.Wait()
	p.guarded.CloseIdleConnections()
}

// pollFeed polls feed once and notes how it went. Its fetches end within
// Interval; acting on an alert found (Handle: the speech, the store, the
// publish) is not cut short by that bound.
func (p *Poller) pollFeed(ctx context.Context, feed string) {
	fetch, cancel := context.WithTimeout(ctx, p.Interval)
	defer cancel()
	err := p.poll(ctx, fetch, feed)
	if ctx.Err() != nil {
		return
	}
	now, label := time.Now(), feedLabel(feed)
	p.note(feed, err, now)
	if err != nil {
		p.Logger.Warn("cap: feed poll failed", "feed", feed, "err", err)
		p.polls.WithLabelValues(label, "error").Inc()
		return
	}
	p.polls.WithLabelValues(label, "ok").Inc()
	p.lastOK.WithLabelValues(label).Set(float64(now.UnixNano()) / 1e9)
}

// seenEntry and markEntry keep which Atom entries were handled.
func (p *Poller) seenEntry(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[key]
}

// entryKey names a feed's entry as the poller remembers it: an entry
// that was updated is new.
func entryKey(feed, id, updated string) string { return feed + " " + id + "@" + updated }

// keepOnly forgets the entries of feed it no longer lists. An entry is
// judged while the feed carries it, so the feed's own list bounds what is
// remembered; before, every entry of every feed stayed for the life of
// the process (a national feed publishes hundreds a day). One that comes
// back is fetched again and is a duplicate of the alert it carried.
func (p *Poller) keepOnly(feed string, listed map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix := feed + " "
	for k := range p.seen {
		if strings.HasPrefix(k, prefix) && !listed[k] {
			delete(p.seen, k)
		}
	}
}

func (p *Poller) markEntry(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[key] = true
}

// atom is the part of an Atom feed the poller reads.
type atom struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	Entries []struct {
		ID      string `xml:"id"`
		Updated string `xml:"updated"`
		Links   []struct {
			Href string `xml:"href,attr"`
			Rel  string `xml:"rel,attr"`
			Type string `xml:"type,attr"`
		} `xml:"link"`
	} `xml:"entry"`
}

// poll fetches feed and its entries with fetch, and hands what it finds
// to Handle with ctx.
func (p *Poller) poll(ctx, fetch context.Context, feed string) error {
	base, err := url.Parse(feed)
	if err != nil {
		return fmt.Errorf("feed %s: %w", feed, err)
	}
	// A copy of the client that follows redirects only as far as links
	// go: a feed on plain HTTP changed on the way must not send the
	// controller to its own API by a redirect either.
	client := *p.guarded
	next := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := p.follows(base, req.URL); err != nil {
			p.refused.WithLabelValues(feedLabel(feed)).Inc()
			return fmt.Errorf("redirect from %s: %w", feedLabel(via[len(via)-1].URL.String()), err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	// Where the feed was reached says whether its entries may lead to
	// internal addresses: a feed on the province's own network may keep
	// its alerts there, one on the Internet may not send the controller
	// there.
	var feedAddr net.Addr
	trace := &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) { feedAddr = c.Conn.RemoteAddr() }}
	raw, err := p.get(httptrace.WithClientTrace(fetch, trace), &client, feed)
	if err != nil {
		return err
	}
	guard := &dialGuard{feed: feedLabel(feed), internal: p.Internal, refused: p.refused}
	if ap, err := netip.ParseAddrPort(fmt.Sprint(feedAddr)); err == nil {
		guard.allowInternal = p.Internal(ap.Addr())
	}
	entries := context.WithValue(fetch, dialGuardKey{}, guard)
	var root struct{ XMLName xml.Name }
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&root); err != nil {
		return fmt.Errorf("feed %s: not XML: %w", feed, err)
	}
	if root.XMLName.Local == "alert" {
		return p.Handle(ctx, raw, feed)
	}
	var f atom
	if err := xml.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("feed %s: neither a CAP alert nor an Atom feed: %w", feed, err)
	}
	// Entries not taken in for a passing reason: tried again next poll,
	// and the poll fails, so that a feed whose alerts cannot be fetched
	// does not look healthy.
	var failed []error
	listed := make(map[string]bool, len(f.Entries))
	for _, e := range f.Entries {
		listed[entryKey(feed, e.ID, e.Updated)] = true
	}
	p.keepOnly(feed, listed)
	for _, e := range f.Entries {
		key := entryKey(feed, e.ID, e.Updated)
		if p.seenEntry(key) {
			continue
		}
		href := ""
		for _, l := range e.Links {
			switch {
			case strings.Contains(l.Type, "cap+xml"):
				href = l.Href
			case href == "" && (l.Rel == "" || l.Rel == "alternate"):
				href = l.Href
			}
		}
		if href == "" {
			p.Logger.Warn("cap: feed entry without a link", "feed", feed, "entry", e.ID)
			p.markEntry(key)
			continue
		}
		ref, err := url.Parse(href)
		if err != nil {
			p.Logger.Warn("cap: feed entry with a bad link", "feed", feed, "entry", e.ID, "href", href)
			p.markEntry(key)
			continue
		}
		link := base.ResolveReference(ref)
		if err := p.follows(base, link); err != nil {
			// Not marked: the entry is judged again at each poll, and the
			// feed shows as failing until it links where it may or the
			// operator lists the host.
			p.Logger.Warn("cap: feed entry link not followed: it leaves the feed's host", "feed", feed, "entry", e.ID, "err", err)
			p.refused.WithLabelValues(feedLabel(feed)).Inc()
			failed = append(failed, fmt.Errorf("entry %s: %w", e.ID, err))
			continue
		}
		if fetch.Err() != nil {
			failed = append(failed, fmt.Errorf("entry %s: not reached within the poll's %v", e.ID, p.Interval))
			continue
		}
		doc, err := p.get(entries, &client, link.String())
		if err != nil {
			msg := "cap: feed entry not fetched; trying again next poll"
			if errors.Is(err, ErrForeignLink) { // a redirect, or an internal address
				msg = "cap: feed entry link not followed: it leaves the feed's host"
			}
			p.Logger.Warn(msg, "feed", feed, "entry", e.ID, "err", err)
			failed = append(failed, fmt.Errorf("entry %s: %w", e.ID, err))
			continue
		}
		switch err := p.Handle(ctx, doc, feed); {
		case err == nil:
		case errors.Is(err, ErrRefused) || errors.Is(err, ErrInvalid):
			p.Logger.Warn("cap: feed alert refused", "feed", feed, "entry", e.ID, "err", err)
		default:
			p.Logger.Warn("cap: feed alert not taken in; trying again next poll", "feed", feed, "entry", e.ID, "err", err)
			failed = append(failed, fmt.Errorf("entry %s: %w", e.ID, err))
			continue
		}
		p.markEntry(key)
	}
	if len(failed) > 0 {
		return fmt.Errorf("feed %s: %d new entries not taken in, tried again next poll: %w", feed, len(failed), errors.Join(failed...))
	}
	return nil
}

func (p *Poller) get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/cap+xml, application/atom+xml, application/xml")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, MaxSize)
	}
	return raw, nil
}

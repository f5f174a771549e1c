package schedule

import (
	"time"

	"loaxa.vn/controller/loaxa"
)

// lag is a node left behind: it runs an older desired state than the one
// the broker accepted for it.
type lag struct {
	version uint64        // the version republished
	wait    time.Duration // before the next republish, doubling
	next    time.Time
}

// maxBehindWait bounds the doubling wait between republishes to a node
// that stays behind.
const maxBehindWait = time.Hour

// behind reports whether node n should have its unchanged desired state
// prev published again because it runs an older one: it has been online
// for BehindAfter, and prev was accepted by the broker at least BehindAfter
// ago. A node receives the retained copy whenever it subscribes, so that
// should not happen; it does when the broker lost its retained messages
// (a Mosquitto restarted without persistence, or crashed before it saved
// them) while the node was offline, and the node would run its old
// schedule until the next change. Publishing again repairs that.
//
// A node that stays behind (it refuses the state: its log and its
// rejected count say why) is published to again after twice the wait each
// time, up to an hour, and logged each time: it is not a broker's loss
// then, and a technician should look.
func (s *Scheduler) behind(n *loaxa.Node, prev loaxa.DesiredHead, now time.Time) bool {
	st := n.Status
	if s.BehindAfter <= 0 || prev.Published.IsZero() {
		return false
	}
	if st.State != loaxa.NodeOnline || st.RunningVersion >= prev.Version {
		s.mu.Lock()
		if st.RunningVersion >= prev.Version {
			delete(s.lagging, n.ID)
		}
		s.mu.Unlock()
		return false
	}
	if now.Sub(prev.Published) < s.BehindAfter || now.Sub(st.Since) < s.BehindAfter {
		return false
	}
	s.mu.Lock()
	l := s.lagging[n.ID]
	switch {
	case l == nil || l.version != prev.Version:
		if s.lagging == nil {
			s.lagging = map[string]*lag{}
		}
		l = &lag{version: prev.Version, wait: s.BehindAfter}
		s.lagging[n.ID] = l
	case now.Before(l.next):
		s.mu.Unlock()
		return false
	default:
		l.wait = min(2*l.wait, maxBehindWait)
	}
	l.next = now.Add(l.wait)
	wait, again := l.wait, l.wait > s.BehindAfter
	s.mu.Unlock()
	s.caughtUp.Add(1)
	msg := "schedule: node runs an older desired state than the broker accepted for it; publishing it again (the broker may have lost its retained copy)"
	if again {
		msg = "schedule: node still runs an older desired state after it was published again; it may refuse it (see its log and rejected count)"
	}
	s.Logger.Warn(msg, "node", n.ID, "running", st.RunningVersion, "version", prev.Version,
		"published_at", prev.Published, "online_since", st.Since, "next_wait", wait)
	return true
}

// Republished returns how many times a desired state was published again
// to a node that ran an older one (see behind).
func (s *Scheduler) Republished() uint64 { return s.caughtUp.Load() }

package schedule

import "context"

// CompileEachNode makes s compile every node of an area's programme and of
// a conflict check on its own, as before nodes were grouped: the answer
// the grouped one must equal.
func CompileEachNode(s *Scheduler) { s.eachNode = true }

// RetryDue runs one retry round now (Run runs them between passes).
func (s *Scheduler) RetryDue(ctx context.Context) { s.retryDue(ctx) }

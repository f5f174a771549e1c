#!/usr/bin/env bash
# bench-skew.sh measures how closely in time nodes whose system clocks are
# minutes off start the same bulletin: a real controller and NODES real
# agents in one process (e2e/skew), each clock 1 to 5 minutes fast or slow,
# ROUNDS bulletins for all of them. It prints |start - intended| and the
# spread between nodes (p50/p99/max), from the real time each output began
# and from the agents' own late_ms. BENCHMARKS.md records the results.
#
#   scripts/bench-skew.sh [NODES [ROUNDS]]     (default 8 nodes, 30 rounds)
#
# The machine's load average is printed before and after: every agent
# shares the processors, so a busy machine shows as start jitter.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

nodes=${1:-8}
rounds=${2:-30}
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

echo "nodes=$nodes rounds=$rounds $("$go" version) cores=$(nproc)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAXA_BENCH_SKEW_NODES=$nodes "$go" test -count=1 -run '^$' -bench StartSkew -benchtime "${rounds}x" -timeout 30m ./e2e/skew
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

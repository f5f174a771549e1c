#!/usr/bin/env bash
# bench-content.sh measures 2,000 nodes (LOAXA_BENCH_NODES) fetching one new
# bulletin from a real controller at the same instant, with and without the
# spread of first fetches (node/content), an alert's new message fetched by
# every node at once, the standing content list, and the ingest of a
# one-hour upload (peak heap). Results go in BENCHMARKS.md with this command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi
"$go" test -run '^$' -bench BenchmarkFleetFetch -benchtime 1x -timeout 60m ./e2e/fetchbench/
# An alert whose message no node has (typed a moment ago), over loopback and
# through a shared controller uplink of 1 Gbit/s and 100 Mbit/s (when each
# node could begin to play it as it arrives, and when it has all of it),
# and the list of standing content over a province's 10,000 nodes
# (docs/content.md).
LOAXA_BENCH_UPLINK_MBIT=${LOAXA_BENCH_UPLINK_MBIT:-0,1000,100} "$go" test -run '^$' -bench BenchmarkAlertFetch -benchtime 1x -timeout 60m ./e2e/fetchbench/
LOAXA_BENCH_NODES=${LOAXA_BENCH_NODES:-10000} "$go" test -run '^$' -bench BenchmarkStandingList -benchtime 20x -timeout 60m ./e2e/fetchbench/
"$go" test -run '^$' -bench 'IngestHour' -benchtime 1x -timeout 30m ./controller/media/

#!/usr/bin/env bash
# bench-fleet.sh measures the controller under a fleet's status traffic
# (e2e/fleetbench): the controller binary in its own process, and one raw
# MQTT connection per simulated node in the test process, each signed in
# with its node's own credentials.
#
#   scripts/bench-fleet.sh [STAGES [IDLE]]   (default 1000,5000,10000 and 30s)
#
# It prints, from the same run: raw bbolt batched-write throughput on this
# disk; the controller's resident memory per node at each stage; the state
# ingest rate when every node sends 10 state changes at once, and its ratio
# to raw bbolt; the p50/p99 of GET /api/v1/nodes?state=offline during that
# ingest; and one real node agent's resident memory and idle CPU.
# BENCHMARKS.md records the results. 10,000 nodes need 10,000 sockets in
# each process: check `ulimit -n`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

stages=${1:-1000,5000,10000}
idle=${2:-30s}
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

echo "stages=$stages idle=$idle $("$go" version) cores=$(nproc) open-files=$(ulimit -n)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAXA_BENCH_FLEET=$stages LOAXA_BENCH_IDLE=$idle "$go" test -count=1 -timeout 30m -v \
	-run 'TestFleetStatusIngest|TestNodeAgentIdle' ./e2e/fleetbench | grep -E 'RESULT|^(---|ok|FAIL)'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

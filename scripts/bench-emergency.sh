#!/usr/bin/env bash
# bench-emergency.sh measures emergency alerts end to end: a real
# controller (embedded broker) and NODES real agents in one process
# (e2e/emergencybench, firmware-sim fleet with memory stores and silent
# real-time outputs), ROUNDS emergencies to their area. It prints
# alert-to-sound (API call -> first sample handed to each node's output)
# p50/p99, the start skew (|sound - the area's start instant|) p99, the
# receive delay the nodes report, and in the same run the raw fan-out of
# one QoS 1 message to NODES plain MQTT subscribers (the floor) and the
# ratio. BENCHMARKS.md records the results.
#
#   scripts/bench-emergency.sh [NODES [ROUNDS]]     (default 100 nodes, 5 rounds)
#
# One process holds the controller, the agents and the floor's
# subscribers: about 4 open files per node, so 4,000 nodes is the most
# under a 20,000-file limit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

nodes=${1:-100}
rounds=${2:-5}
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

echo "nodes=$nodes rounds=$rounds $("$go" version) cores=$(nproc)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAXA_BENCH_EMERGENCY_NODES=$nodes "$go" test -count=1 -run '^$' -bench AlertToSound -benchtime "${rounds}x" -timeout 30m ./e2e/emergencybench
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

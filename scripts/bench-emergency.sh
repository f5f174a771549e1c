#!/usr/bin/env bash
# bench-emergency.sh measures emergency alerts end to end: a real
# controller (embedded broker, bbolt) in the benchmark's process and NODES
# real agents in firmware-sim fleet processes of at most 2,500 agents each
# (e2e/emergencybench; memory stores, silent real-time outputs, a sound
# log per fleet), ROUNDS emergencies to their area after a warm-up round.
# It prints alert-to-sound (API call -> first sample handed to each node's
# output) p50/p99, the start skew (|sound - the area's start instant|)
# p99, the receive delay the nodes report, and in the same run the raw
# fan-out of one QoS 1 message to NODES plain MQTT subscribers (the floor;
# its broker and subscribers in processes of their own) and the ratio.
# BENCHMARKS.md records the results.
#
#   scripts/bench-emergency.sh [NODES [ROUNDS]]     (default 100 nodes, 5 rounds)
#
# BENCH_ARGS adds go test flags, e.g. BENCH_ARGS="-cpuprofile cpu.out" to
# profile the controller (the benchmark's process);
# LOAXA_BENCH_FLEET_PPROF=6060 serves pprof from fleet i on port 6060+i;
# LOAXA_BENCH_ALERT_PREPARE=-1s has the nodes prepare alerts at the
# amplifier warm-up only, as any play (for comparison);
# LOAXA_BENCH_FRESH_SECONDS=20 sends a new 20 s message each round, which
# no node has (each downloads it), and prints when the nodes could play it
# and how many of those whose message came after the chime's end began it
# in step with a repeat of the others (LOAXA_BENCH_REPEAT=3 repeats it;
# default 1, where none can);
# LOAXA_BENCH_FLEET_GOMAXPROCS and LOAXA_BENCH_FLEET_GOGC set GOMAXPROCS
# and GOGC of the fleet processes and the floor's subscribers only (the
# simulation's own overhead). The controller's process and the floor's
# broker run the collector as the controller does (GOGC, else 200).
# LOAXA_BENCH_FLEET_PROFILE=DIR (with LOAXA_BENCH_FLEET_PPROF) saves a CPU
# profile of each fleet over the first LOAXA_BENCH_FLEET_PROFILE_SECONDS
# (default 3) of each measured round to DIR/fleet<i>-round<k>.pprof.
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
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
LOAXA_BENCH_EMERGENCY_NODES=$nodes LOAXA_BENCH_EMERGENCY_ROUNDS=$rounds \
	"$go" test -count=1 -run '^$' -bench AlertToSound -benchtime 1x -timeout 60m ${BENCH_ARGS:-} ./e2e/emergencybench
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# bench-round.sh measures the controller's own cost of one emergency round
# at NODES nodes (e2e/emergencybench, BenchmarkControllerRound): a real
# controller (embedded broker, bbolt on disk, HTTP API) in the benchmark's
# process and NODES thin nodes, plain MQTT clients with the nodes' own
# credentials that publish for an alert exactly what a node agent
# publishes (events received / content-ready, started, completed; states
# after each change) and nothing costlier, in processes of at most 2,500.
# The thin nodes check each message's signature as an agent does and
# start the alert at its start instant (one timer a process for each
# instant, the clock taken for each node before any does the start's
# work: a board's timer is its own).
# Per round it prints the benchmark process's CPU time (getrusage: the
# controller and the benchmark's own API calls), the wall time until the
# report shows every node received and completed, the alert's fan-out to
# the thin nodes, and their alert-to-start and start skew; at the end, the
# raw fan-out floor of the same run (as scripts/bench-emergency.sh) and
# the ratio. BENCHMARKS.md records the results.
#
#   scripts/bench-round.sh [NODES [ROUNDS]]     (default 1000 nodes, 5 rounds)
#
# LOAXA_BENCH_BROKER=mosquitto runs the same rounds through a real Mosquitto
# (Debian's /usr/sbin/mosquitto, as scripts/test.sh installs it) that the
# benchmark starts with what the controller exports: its mosquitto.conf
# settings, the password file with every node's account and the
# controller's two, the ACL; a soft limit of open files of NODES + 1024.
# It then also prints Mosquitto's CPU per round (/proc/<pid>/stat) and how
# often it logged that it began dropping a client's messages.
# LOAXA_BENCH_WATCHERS=3 has three officers watch each round's board (live
# streams of the emergency, open from the call to the round's end).
# LOAXA_BENCH_THIN_VERIFY=0 has the thin nodes skip the signature check,
# as if each had a processor of its own for it, as a board has;
# LOAXA_BENCH_THIN_VERIFY=shared has the nodes of a process check and
# decode each distinct message to their area once, the others taking that
# result for the same bytes (the node's work on its message done once a
# process instead of 2,500 times on the same two cores).
# LOAXA_BENCH_FANOUT_PROFILE=fanout.cpu writes a CPU profile of each
# measured round's fan-out alone (from the call until every thin node has
# the alert) to fanout.cpu.<round>, and of each thin nodes' process over
# the same window to fanout.cpu.<round>.nodes<i>; each round also prints
# the CPU the controller's process and the thin nodes used in that window.
# LOAXA_BENCH_FLEET_GOMAXPROCS and LOAXA_BENCH_FLEET_GOGC set GOMAXPROCS
# and GOGC of the thin nodes' processes and the floor's subscribers only
# (the simulation's own overhead: 2,500 clients' goroutine stacks a
# process for its collector to scan).
# The controller's process (and the floor's broker) run the collector as
# the controller does: GOGC from the environment, else 200. Each round
# prints how many of the process's collection cycles ended while the
# alert fanned out (a cycle under way at the call: the hold does not stop
# it), how many since the round before, and the heap live at the call.
# LOAXA_BENCH_ROUND_PROFILE=cpu.out writes a CPU profile of the measured
# rounds alone (go tool pprof cpu.out).
# LOAXA_BENCH_ALLOCS_PROFILE=/tmp/allocs writes the benchmark process's
# allocation profile just before the measured rounds (/tmp/allocs.before)
# and just after them (/tmp/allocs.after): what the rounds allocated is
# go tool pprof -sample_index=alloc_space -diff_base /tmp/allocs.before
# /tmp/allocs.after (paths relative to e2e/emergencybench). Each follows a
# collection, so the first measured round begins on a fresh heap.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

nodes=${1:-1000}
rounds=${2:-5}
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

echo "nodes=$nodes rounds=$rounds broker=${LOAXA_BENCH_BROKER:-embedded} $("$go" version) cores=$(nproc)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
LOAXA_BENCH_EMERGENCY_NODES=$nodes LOAXA_BENCH_EMERGENCY_ROUNDS=$rounds \
	"$go" test -count=1 -run '^$' -bench ControllerRound -benchtime 1x -timeout 60m ${BENCH_ARGS:-} ./e2e/emergencybench
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

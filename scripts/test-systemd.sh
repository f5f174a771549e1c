#!/usr/bin/env bash
# test-systemd.sh runs loaxa's systemd units under a real systemd as PID 1:
# a Debian bookworm made by debootstrap and booted with systemd-nspawn
# (no network of its own: the controller's ports stay inside). In it, it
# follows docs/deploy.md's steps as an admin would:
#
#   - the controller's steps ("The controller"), from the release archive
#     that scripts/build-boards.sh makes, with the password the first start
#     prints to the journal;
#   - text to speech through espeak-ng under the unit's sandbox (a typed
#     notice, POST /content/tts, and a typed emergency alert that a node
#     plays);
#   - a node installed with scripts/install-node.sh --audio none, which
#     must connect and play the alert;
#   - the daily backup's service and timer ("Backups"), started once by
#     hand: the archive, named by the day, 0600, one older than a week
#     deleted, and read back by `loaxa-controller restore`;
#   - the upgrade's steps ("Upgrading the controller") to a 1.5.0 build,
#     and going back to 1.4.0 with the backup they took, restored as root;
#   - what the units promise: READY=1 (Type=notify), the node's
#     WATCHDOG=1, LimitNOFILE, the seccomp filter and NoNewPrivileges, a
#     restart after a crash (Restart=always), each unit's Documentation=
#     installed, and both services up again after a reboot.
#
# It fails, printing systemctl status and the journal, when a unit fails or
# a step does not do what the docs say.
#
# Usage (as root, on Debian amd64 with a Debian mirror reachable; it takes
# a few minutes and about 400 MB under /var/tmp, removed at the end):
#
#   scripts/test-systemd.sh
#
# LOAXA_DEBIAN_MIRROR (default http://deb.debian.org/debian) is the mirror
# debootstrap uses; LOAXA_SYSTEMD_KEEP=1 keeps the container's directory
# (printed) for a look afterwards. Not part of scripts/test.sh: it needs
# root, a mirror and minutes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,37s/^# \{0,1\}//p' "scripts/$(basename "${BASH_SOURCE[0]}")"
	exit 0
fi
((EUID == 0)) || { echo "test-systemd.sh: run as root (debootstrap and systemd-nspawn need it)" >&2; exit 2; }
mirror=${LOAXA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The Go scripts/test.sh builds with (LOAXA_GO_TOOLCHAIN=local: the
# installed one).
export GOTOOLCHAIN=${LOAXA_GO_TOOLCHAIN:-go1.26.10}
go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
	echo "== apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

work=$(mktemp -d /var/tmp/loaxa-systemd.XXXXXX)
root=$work/root
nspawn=""
leader=""

# cleanup powers the container off and removes what the test made.
cleanup() {
	if [[ -n $nspawn ]] && kill -0 "$nspawn" 2>/dev/null; then
		if [[ -n $leader ]]; then
			nsenter -t "$leader" -a -- systemctl poweroff 2>/dev/null || true
		fi
		for _ in $(seq 60); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.5; done
		kill -0 "$nspawn" 2>/dev/null && kill -KILL "$nspawn"
		wait "$nspawn" 2>/dev/null || true
	fi
	if [[ ${LOAXA_SYSTEMD_KEEP:-} == 1 ]]; then
		echo "test-systemd.sh: kept $work (the container's root in root/, its console in console.log)"
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT

# inside runs a command in the container, as root, with a clean environment.
inside() {
	nsenter -t "$leader" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 "$@"
}

# fail says what went wrong, with the units' state and journal.
fail() {
	echo "test-systemd.sh: FAIL: $*" >&2
	if [[ -n $leader ]]; then
		inside systemctl --no-pager --full status 'loaxa-*' >&2 || true
		inside journalctl --no-pager -b -u 'loaxa-*' -n 200 >&2 || true
		inside systemctl --no-pager --failed >&2 || true
	fi
	exit 1
}

# boot starts the container's systemd and waits until it has booted. The
# hard limit of open files is a server's (systemd's own default as PID 1),
# not the one this shell happens to have, so LimitNOFILE= means what it
# means on a server.
boot() {
	systemd-nspawn --quiet --directory="$root" --machine=loaxa-systemd-test --register=no --keep-unit \
		--private-network --console=passive --rlimit=RLIMIT_NOFILE=524288 --boot >>"$work/console.log" 2>&1 &
	nspawn=$!
	leader=""
	for _ in $(seq 120); do
		leader=$(pgrep -P "$nspawn" -x systemd || true)
		[[ -n $leader ]] && break
		kill -0 "$nspawn" 2>/dev/null || { cat "$work/console.log" >&2; fail "systemd-nspawn exited"; }
		sleep 0.5
	done
	[[ -n $leader ]] || fail "the container's systemd did not start"
	local state
	for _ in $(seq 120); do
		state=$(inside systemctl is-system-running 2>/dev/null || true)
		case $state in
		running) return ;;
		degraded) inside systemctl --no-pager --failed; fail "the system booted degraded" ;;
		esac
		sleep 0.5
	done
	fail "the container did not finish booting (systemctl is-system-running: $state)"
}

# poweroff shuts the container down and waits for it.
poweroff() {
	inside systemctl poweroff || true
	for _ in $(seq 120); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.5; done
	kill -0 "$nspawn" 2>/dev/null && fail "the container did not power off in 60 s"
	wait "$nspawn" || true
	nspawn=""
	leader=""
}

# active waits for a unit to be active (a start that is still going on,
# or a restart's 5 s wait, is waited for).
active() {
	local unit=$1 state
	for _ in $(seq 120); do
		state=$(inside systemctl is-active "$unit" || true)
		[[ $state == active ]] && return
		[[ $state == failed ]] && fail "$unit failed"
		sleep 0.5
	done
	fail "$unit is not active after 60 s ($state)"
}

# block prints the first sh block of docs/deploy.md after the line that
# starts with $1 and that holds $2.
block() {
	awk -v head="$1" -v want="$2" '
		index($0, head) == 1 { in_section = 1 }
		in_section && /^```sh$/ { buf = ""; f = 1; next }
		f && /^```$/ { f = 0; if (index(buf, want)) { printf "%s", buf; exit } next }
		f { buf = buf $0 "\n" }' "$repo/docs/deploy.md"
}

version=1.4.0 # the version docs/deploy.md's steps name
echo "== building the controller's release archive and the node agent"
GO="$go" scripts/build-boards.sh --out "$work/dist" --version "$version" controller-linux-amd64 >/dev/null
# The release the upgrade steps name, to upgrade to and go back from.
GO="$go" scripts/build-boards.sh --out "$work/dist" --version 1.5.0 controller-linux-amd64 >/dev/null
mkdir -p "$work/node"
# The node's archive, for this machine's architecture (build-boards.sh
# makes the boards' ARM ones): the agent, its install script, unit, README.
CGO_ENABLED=1 "$go" build -trimpath -ldflags "-X main.version=$version" -o "$work/node/node" ./node
cp scripts/install-node.sh scripts/systemd/loaxa-node.service "$work/node/"
cp scripts/loaxa-node-README "$work/node/README"

echo "== debootstrap bookworm from $mirror"
# espeak-ng: the controller's steps install it; libasound2: the agent's
# ALSA library (every board image has it); curl: the API from inside.
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,espeak-ng,libasound2,curl,procps \
	bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# What an installed Debian has and debootstrap does not write: the
# controller is built with CGO_ENABLED=0, and Go's own resolver finds
# localhost (the backup's --url) only in /etc/hosts.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo loaxa-systemd-test >"$root/etc/hostname"
cp "$work/dist/loaxa-controller-$version-linux-amd64.tar.gz" "$work/dist/loaxa-controller-1.5.0-linux-amd64.tar.gz" "$root/root/"
cp -r "$work/node" "$root/root/node-$version"

echo "== booting systemd"
boot
inside systemctl --version | sed -n 1p

echo "== the controller's steps (docs/deploy.md, The controller)"
steps=$(block "### The controller" "loaxa-controller.service")
[[ -n $steps ]] || fail "docs/deploy.md's controller steps not found"
# All but following the journal (journalctl -f does not end).
grep -v '^journalctl .*-f' <<<"$steps" >"$root/root/controller-steps.sh"
inside bash -euxc 'cd /root && . ./controller-steps.sh' || fail "the controller's steps failed"
active loaxa-controller
grep -q 'Status: "serving"' <<<"$(inside systemctl --no-pager status loaxa-controller)" || fail "the controller's status does not say serving"
password=$(inside journalctl -u loaxa-controller --no-pager -o cat | sed -n 's/^Created user "admin" with password: \(.*\)$/\1/p')
[[ -n $password ]] || fail "the journal does not have the first start's password (journalctl -u loaxa-controller | grep 'Created user')"

pid=$(inside systemctl show -p MainPID --value loaxa-controller)
# LimitNOFILE=65536, or as much as the container may have: a machine whose
# hard limit is lower (a sandbox's) clamps it, as systemd does.
nofile=65536
# shellcheck disable=SC2016 # awk's own $5
cap=$(inside awk '/^Max open files/ { print $5 }' /proc/1/limits)
if ((cap < nofile)); then
	echo "   (this machine allows at most $cap open files a process: LimitNOFILE=65536 checked as $cap)"
	nofile=$cap
fi
inside grep -q "^Max open files *$nofile *$nofile " "/proc/$pid/limits" ||
	fail "LimitNOFILE=65536 not in effect: $(inside grep 'open files' "/proc/$pid/limits")"
inside grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail "the controller runs without NoNewPrivileges"
inside grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "the controller runs without a seccomp filter (SystemCallFilter=, MemoryDenyWriteExecute=)"

# api METHOD PATH [JSON]: curl inside the container, with the admin's token.
api() {
	local method=$1 path=$2 body=${3:-}
	inside curl -sS -X "$method" -H "Authorization: Bearer $token" ${body:+-d "$body"} \
		-w '\n%{http_code}' "http://localhost:8080/api/v1$path"
}
# status and body of api's answer.
code() { tail -n 1 <<<"$1"; }
body() { sed '$d' <<<"$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

token=$(inside curl -sS http://localhost:8080/api/v1/auth/token \
	-d "{\"username\":\"admin\",\"password\":\"$password\"}" | json 'd["token"]') || fail "sign in with the journal's password"

echo "== text to speech: a typed notice (espeak-ng under the unit's sandbox)"
r=$(api POST /content/tts '{"text":"Kính gửi bà con thôn Đông. Chiều nay có mưa lớn, đề nghị bà con không ra đồng."}')
[[ $(code "$r") == 201 ]] || fail "POST /content/tts: $r"
[[ $(body "$r" | json 'd["source"]["format"]') == tts/espeak-ng ]] || fail "POST /content/tts: $r"

echo "== a node: scripts/install-node.sh --audio none"
for req in '/areas {"id":"31","name":"Thành phố Hải Phòng"}' \
	'/areas {"id":"318","name":"Huyện Tiên Lãng","parent":"31"}' \
	'/areas {"id":"12346","name":"Xã Tiên Thắng","parent":"318"}'; do
	r=$(api POST "${req%% *}" "${req#* }")
	[[ $(code "$r") == 201 ]] || fail "POST ${req}: $r"
done
r=$(api POST /nodes '{"id":"tien-thang-01","name":"Cụm loa chợ Đôi","area":"12346"}')
[[ $(code "$r") == 201 ]] || fail "POST /nodes: $r"
body "$r" | python3 -c 'import json,sys; json.dump(json.load(sys.stdin)["credentials"], open(sys.argv[1], "w"), indent=1)' "$root/root/node.json"
inside bash -euxc "cd /root/node-$version && ./install-node.sh --credentials /root/node.json --audio none" || fail "install-node.sh failed"
active loaxa-node
grep -q 'Status: "agent running"' <<<"$(inside systemctl --no-pager status loaxa-node)" || fail "the node's status does not say agent running"

echo "== the node's watchdog: WATCHDOG=1 reaches systemd (WatchdogSec=30s)"
# systemd stamps each WATCHDOG=1 it takes; the agent sends one every 10 s.
stamp=$(inside systemctl show -p WatchdogTimestampMonotonic --value loaxa-node)
pinged=""
for _ in $(seq 50); do
	[[ $(inside systemctl show -p WatchdogTimestampMonotonic --value loaxa-node) != "$stamp" ]] && pinged=1 && break
	sleep 0.5
done
[[ -n $pinged ]] || fail "systemd took no WATCHDOG=1 from the node in 25 s"
[[ $(inside systemctl show -p NRestarts --value loaxa-node) == 0 ]] || fail "the node was restarted"

echo "== a typed emergency alert, spoken by espeak-ng and played by the node"
r=$(api POST /emergency '{"text":"Bão số 3 sắp đổ bộ. Bà con khẩn trương vào nơi trú ẩn an toàn.","targets":["318"],"repeat":1}')
[[ $(code "$r") == 201 ]] || fail "POST /emergency: $r"
alert=$(body "$r" | json 'd["id"]')
played=""
for _ in $(seq 240); do
	r=$(api GET "/emergency/$alert")
	state=$(body "$r" | json '[n["state"] for n in d.get("nodes", [])]')
	[[ $state == "['completed']" ]] && played=1 && break
	sleep 0.5
done
[[ -n $played ]] || fail "the node did not complete the alert in 120 s: $r"
grep -q 'agent: playing' <<<"$(inside journalctl -u loaxa-node --no-pager)" || fail "the node's journal has no 'agent: playing'"

echo "== the backup's service and timer (docs/deploy.md, Backups)"
steps=$(block "## Backups" "loaxa-backup.timer")
[[ -n $steps ]] || fail "docs/deploy.md's backup steps not found"
# All but the last line (the start by hand), run below once the password
# is in backup.env.
head -n -1 <<<"$steps" >"$root/root/backup-steps.sh"
tail -n 1 <<<"$steps" >"$root/root/backup-start.sh"
grep -q '^systemctl start loaxa-backup.service' "$root/root/backup-start.sh" || fail "the backup steps no longer end with starting it by hand"
inside bash -euxc 'cd /root && . ./backup-steps.sh' || fail "the backup steps failed"
echo "LOAXA_PASSWORD=$password" >"$root/etc/loaxa/backup.env"
inside touch -d '-8 days' /var/backups/loaxa/loaxa-2000-01-01.tar.gz
inside bash -euxc 'cd /root && . ./backup-start.sh' || fail "the backup service failed"
grep -q loaxa-backup.service <<<"$(inside systemctl list-timers --no-pager loaxa-backup.timer)" || fail "loaxa-backup.timer is not scheduled"
archive=/var/backups/loaxa/loaxa-$(inside date +%F).tar.gz
[[ $(inside stat -c %a "$archive") == 600 ]] || fail "$archive is not there with mode 0600: $(inside ls -l /var/backups/loaxa)"
inside test ! -e /var/backups/loaxa/loaxa-2000-01-01.tar.gz || fail "the backup older than a week was not deleted"
grep -q "Wrote $archive" <<<"$(inside journalctl -u loaxa-backup --no-pager)" || fail "the backup's journal does not say Wrote $archive"
inside loaxa-controller restore "$archive" --data /tmp/restored >/dev/null || fail "the backup does not restore"

echo "== Restart=always: the controller killed"
restarts=$(inside systemctl show -p NRestarts --value loaxa-controller)
inside systemctl kill --signal=KILL loaxa-controller
for _ in $(seq 60); do
	[[ $(inside systemctl show -p NRestarts --value loaxa-controller) != "$restarts" ]] && break
	sleep 0.5
done
[[ $(inside systemctl show -p NRestarts --value loaxa-controller) != "$restarts" ]] || fail "the killed controller was not restarted"
active loaxa-controller

echo "== the upgrade's steps to 1.5.0 (docs/deploy.md, Upgrading the controller), and going back"
steps=$(block "### Upgrading the controller" "loaxa-before-1.5.0")
[[ -n $steps ]] || fail "docs/deploy.md's upgrade steps not found"
# With the password the steps have typed, and without following the journal.
sed -e "s/^read -rsp 'admin password: ' LOAXA_PASSWORD /LOAXA_PASSWORD='$password' /" -e 's/ && journalctl -u loaxa-controller -f$//' \
	<<<"$steps" >"$root/root/upgrade-steps.sh"
grep -q "^LOAXA_PASSWORD='" "$root/root/upgrade-steps.sh" || fail "the upgrade steps no longer read the password into LOAXA_PASSWORD"
inside bash -euxc 'cd /root && tar xzf loaxa-controller-1.5.0-linux-amd64.tar.gz && cd loaxa-controller-1.5.0-linux-amd64 && . /root/upgrade-steps.sh' ||
	fail "the upgrade steps failed"
active loaxa-controller
grep -q 'controller started' <<<"$(inside journalctl -u loaxa-controller --no-pager -o cat -n 30)" || fail "the upgraded controller did not start"
[[ $(inside loaxa-controller --version) == "loaxa controller 1.5.0" ]] || fail "loaxa-controller --version: $(inside loaxa-controller --version)"
# Going back, as the page says: the old binary and the backup taken before.
inside bash -euxc "systemctl stop loaxa-controller
	install -m 0755 /root/loaxa-controller-$version-linux-amd64/controller /usr/local/bin/loaxa-controller
	loaxa-controller restore /var/backups/loaxa/loaxa-before-1.5.0.tar.gz --data /var/lib/loaxa-controller --force
	systemctl start loaxa-controller" || fail "going back to $version failed"
active loaxa-controller
r=$(api GET /nodes/tien-thang-01)
[[ $(code "$r") == 200 ]] || fail "the controller gone back to $version does not have the node: $r"

echo "== a reboot: both services enabled, stopped in time and started again"
poweroff
boot
active loaxa-controller
active loaxa-node
inside systemctl is-enabled loaxa-backup.timer >/dev/null || fail "loaxa-backup.timer is not enabled after a reboot"
# The previous boot's journal from the shutdown on: each service stopped,
# within its TimeoutStopSec= and without being killed.
shutdown=$(inside journalctl --no-pager -b -1 -u loaxa-controller -u loaxa-node -o cat |
	awk '/^Stopping loaxa-/ { f = 1 } f')
for unit in loaxa-controller loaxa-node; do
	grep -q "^Stopped $unit.service" <<<"$shutdown" || fail "$unit was not stopped at the reboot: $shutdown"
done
if grep -E 'timed out|SIGKILL|Failed with result' <<<"$shutdown"; then
	fail "a service did not stop cleanly at the reboot"
fi
# Each unit's Documentation= (systemctl status: "Docs:") is a file the
# steps installed.
for unit in loaxa-controller loaxa-node; do
	docs=$(inside systemctl show -p Documentation --value "$unit")
	[[ $docs == file://* ]] || fail "$unit has no Documentation=file://… ($docs)"
	for doc in $docs; do
		inside test -s "${doc#file://}" || fail "$unit's Documentation=$doc is not installed"
	done
done
failed=$(inside systemctl --no-pager --plain --no-legend --failed)
[[ -z $failed ]] || fail "failed units: $failed"

inside systemctl --no-pager status loaxa-controller loaxa-node loaxa-backup.timer loaxa-backup.service || true
echo "test-systemd.sh: ok: the units ran under systemd $(inside systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p')"

#!/usr/bin/env bash
# install-node.sh installs the loaxa node agent on a Debian-family board as
# the systemd service loaxa-node, from the credentials document the
# controller gave for this board.
#
# Usage (as root, from an unpacked release archive or the repository):
#
#   ./install-node.sh --credentials node.json [--binary ./node] [--audio oto|none]
#
# It creates the system user loaxa-node in the audio group, installs the
# binary to /opt/loaxa-node/bin/loaxa-node, the credentials to
# /etc/loaxa/node.json (root:loaxa-node, 0640), a README for technicians to
# /opt/loaxa-node/README, the unit to
# /etc/systemd/system/loaxa-node.service, and enables and starts it. Logs:
# journalctl -u loaxa-node. Running it again upgrades the binary and
# credentials in place; /etc/loaxa/node.env is kept, but for the
# LOAXA_AUDIO line when --audio is given.
#
# --root DIR installs the files under DIR instead of / and only prints the
# commands it would run (useradd, systemctl): for building images and for
# tests.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
credentials=""
binary=""
audio=oto
audio_given=""
root=""
while (($#)); do
	case $1 in
	--credentials) credentials=$2; shift 2 ;;
	--binary) binary=$2; shift 2 ;;
	--audio) audio=$2; audio_given=1; shift 2 ;;
	--root) root=$2; shift 2 ;;
	-h | --help) sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "install-node.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

fail() { echo "install-node.sh: $*" >&2; exit 1; }

[[ -n $credentials ]] || fail "give --credentials FILE: the JSON document the controller answered when this node was created (or that 'node --enrol' wrote)"
[[ -r $credentials ]] || fail "cannot read the credentials file $credentials"
[[ $audio == oto || $audio == none ]] || fail "--audio $audio: want oto (the sound card) or none"
if [[ -z $binary ]]; then
	for b in "$here/node" "$here/loaxa-node"; do
		[[ -x $b ]] && binary=$b && break
	done
	[[ -n $binary ]] || fail "no node binary beside this script; give --binary PATH (scripts/build-boards.sh makes one)"
fi
[[ -x $binary ]] || fail "$binary is not an executable file"
unit=""
for u in "$here/loaxa-node.service" "$here/systemd/loaxa-node.service"; do
	[[ -f $u ]] && unit=$u && break
done
[[ -n $unit ]] || fail "loaxa-node.service not found beside this script"
readme=""
for r in "$here/README" "$here/loaxa-node-README"; do
	[[ -f $r ]] && readme=$r && break
done
[[ -n $readme ]] || fail "README not found beside this script (the unit's Documentation=); use the whole release archive"

# run runs a command, or with --root only prints it.
run() {
	if [[ -n $root ]]; then
		echo "would run: $*"
	else
		"$@"
	fi
}

if [[ -z $root ]]; then
	((EUID == 0)) || fail "run as root (sudo $0 ...): it creates a system user and a systemd service"
	command -v systemctl >/dev/null || fail "systemd is required (systemctl not found)"
	# The binary must run on this board before anything changes: this also
	# catches an archive for the wrong architecture.
	"$binary" --version >/dev/null 2>&1 || fail "$binary does not run on this board ($(uname -m)); use the archive built for it"
	# And the document must be one the agent accepts.
	"$binary" --check --credentials "$credentials" || fail "the credentials in $credentials are not usable (see above)"
fi

if [[ -z $root ]] && ! id -u loaxa-node >/dev/null 2>&1; then
	getent group audio >/dev/null || groupadd --system audio
	useradd --system --user-group --no-create-home --home-dir /var/lib/loaxa-node \
		--shell /usr/sbin/nologin --groups audio --comment "loaxa node agent" loaxa-node
elif [[ -z $root ]]; then
	usermod -a -G audio loaxa-node
else
	run useradd --system --user-group --no-create-home --home-dir /var/lib/loaxa-node --shell /usr/sbin/nologin --groups audio loaxa-node
fi
owner=(-o loaxa-node -g loaxa-node)
cred_owner=(-o root -g loaxa-node)
if [[ -n $root ]]; then
	owner=()
	cred_owner=()
fi

install -d -m 0755 "$root/opt/loaxa-node"
install -d -m 0755 "${owner[@]}" "$root/opt/loaxa-node/bin"
# Write beside, then rename: a running agent keeps its old file until it
# restarts, and a crash leaves the old binary or the new one.
install -m 0755 "${owner[@]}" "$binary" "$root/opt/loaxa-node/bin/.loaxa-node.new"
mv -f "$root/opt/loaxa-node/bin/.loaxa-node.new" "$root/opt/loaxa-node/bin/loaxa-node"
install -m 0644 "$readme" "$root/opt/loaxa-node/README"
install -d -m 0755 "$root/etc/loaxa"
if [[ $credentials -ef $root/etc/loaxa/node.json ]]; then
	# A re-install naming the installed document (an upgrade in place, or
	# the README's roll back by hand): install(1) refuses to copy a file
	# onto itself, which stopped the script half-way, the binary replaced
	# and the unit not. Keep the document; make its owner and mode right.
	chmod 0640 "$credentials"
	[[ -n $root ]] || chown root:loaxa-node "$credentials"
else
	install -m 0640 "${cred_owner[@]}" "$credentials" "$root/etc/loaxa/node.json"
fi
if [[ ! -f $root/etc/loaxa/node.env ]]; then
	cat >"$root/etc/loaxa/node.env" <<ENV
# Settings of the loaxa node agent (node --help lists them).
LOAXA_AUDIO=$audio
#LOAXA_CACHE_SIZE=512
#LOAXA_AMP_WARMUP=500ms
#LOAXA_LOG_LEVEL=info
ENV
	chmod 0644 "$root/etc/loaxa/node.env"
elif [[ -n $audio_given ]]; then
	# node.env is kept on a re-install, with whatever was set by hand; but
	# an --audio given now is meant (a board found to have no sound card
	# installed again with --audio none): it replaces the LOAXA_AUDIO line.
	env_file="$root/etc/loaxa/node.env"
	if grep -q '^[[:space:]]*LOAXA_AUDIO=' "$env_file"; then
		sed -i "s/^[[:space:]]*LOAXA_AUDIO=.*/LOAXA_AUDIO=$audio/" "$env_file"
	else
		echo "LOAXA_AUDIO=$audio" >>"$env_file"
	fi
	echo "Set LOAXA_AUDIO=$audio in /etc/loaxa/node.env (its other settings kept)."
fi
install -d -m 0755 "$root/etc/systemd/system"
install -m 0644 "$unit" "$root/etc/systemd/system/loaxa-node.service"

run systemctl daemon-reload
run systemctl enable loaxa-node.service
run systemctl restart loaxa-node.service
echo "Installed loaxa-node ($("$binary" --version 2>/dev/null || echo "$binary")). Logs: journalctl -u loaxa-node -f"

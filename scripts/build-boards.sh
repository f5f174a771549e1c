#!/usr/bin/env bash
# build-boards.sh cross-compiles loaxa for the boards in the field and writes
# release archives with their SHA-256 sums:
#
#   node        linux/arm64 and linux/arm (GOARM=7), with cgo and ALSA (oto),
#               built by Debian's cross compilers against multi-arch
#               libasound2-dev;
#   controller  linux/amd64 and linux/arm64, CGO_ENABLED=0.
#
# Usage: scripts/build-boards.sh [--out DIR] [--version V] [TARGET...]
#
# TARGET is one of node-linux-arm64, node-linux-arm, controller-linux-amd64,
# controller-linux-arm64 (default: all four). The version (default: git
# describe) is embedded with -ldflags and printed by `node --version` and
# `controller --version`. Missing cross compilers and ALSA headers are
# installed with apt-get (as root, or through sudo).
#
# DIR defaults to dist in the repository; a relative DIR is read from where
# the script is run.
#
# Each archive, DIR/loaxa-<program>-<version>-linux-<arch>.tar.gz, holds one
# directory of the same name with the binary, its systemd unit and a README
# (the node's for technicians, with the install script); DIR/SHA256SUMS
# lists every archive's sum (check with `cd DIR && sha256sum -c SHA256SUMS`).
set -euo pipefail

caller=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=""
version=""
targets=()
while (($#)); do
	case $1 in
	--out) out=$2; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	--version) version=$2; shift 2 ;;
	--version=*) version=${1#--version=}; shift ;;
	-h | --help) sed -n '2,24s/^# \{0,1\}//p' "scripts/$(basename "${BASH_SOURCE[0]}")"; exit 0 ;;
	node-linux-arm64 | node-linux-arm | controller-linux-amd64 | controller-linux-arm64) targets+=("$1"); shift ;;
	*)
		echo "build-boards.sh: unknown argument $1: want --out DIR, --version V or a target (node-linux-arm64, node-linux-arm, controller-linux-amd64, controller-linux-arm64)" >&2
		exit 2
		;;
	esac
done
# A DIR given is read from where the script was run, as any command reads
# a path (it once landed under the repository); the default is the
# repository's dist.
if [[ -z $out ]]; then
	out=dist
elif [[ $out != /* ]]; then
	out=$caller/$out
fi
if ((${#targets[@]} == 0)); then
	targets=(node-linux-arm64 node-linux-arm controller-linux-amd64 controller-linux-arm64)
fi
if [[ -z $version ]]; then
	version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
if [[ ! $version =~ ^[A-Za-z0-9._+-]+$ ]]; then
	echo "build-boards.sh: version \"$version\": use letters, digits and . _ + - only (it becomes part of file names)" >&2
	exit 2
fi

go=${GO:-go}
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi

sudo=()
if ((EUID != 0)) && command -v sudo >/dev/null; then
	sudo=(sudo)
fi

# need_cross makes sure the cross compiler, its C library and the ALSA
# headers of one Debian architecture are installed (the ALSA headers through
# multi-arch: libasound2-dev:arm64 beside the machine's own).
need_cross() {
	local debarch=$1 gcc=$2 gccpkg=$3 triplet=$4
	local missing=()
	command -v "$gcc" >/dev/null || missing+=("$gccpkg")
	# The cross C library headers are only a recommendation of the cross
	# gcc, which --no-install-recommends leaves out.
	[[ -f /usr/$triplet/include/stdio.h ]] || missing+=("libc6-dev-$debarch-cross")
	[[ -f /usr/lib/$triplet/pkgconfig/alsa.pc ]] || missing+=("libasound2-dev:$debarch")
	((${#missing[@]} == 0)) && return 0
	if ((EUID != 0)) && ((${#sudo[@]} == 0)); then
		echo "build-boards.sh: not root and no sudo: install ${missing[*]} yourself (dpkg --add-architecture $debarch first)" >&2
		exit 1
	fi
	echo "installing ${missing[*]}"
	if ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
		"${sudo[@]}" dpkg --add-architecture "$debarch"
	fi
	# A mirror caught mid-sync fails one index (seen: bookworm-security armhf
	# with a size mismatch); apt keeps the others, which usually carry
	# what is needed, so go on and let the install say if it cannot.
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q; then
		echo "build-boards.sh: apt-get update failed for some index; trying the install anyway" >&2
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ldflags="-s -w -X main.version=$version"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for target in "${targets[@]}"; do
	program=${target%%-*}
	arch=${target##*-}
	name=loaxa-$program-$version-linux-$arch
	dir=$stage/$name
	mkdir -p "$dir"
	start=$SECONDS
	case $program in
	node)
		case $arch in
		arm64) debarch=arm64 triplet=aarch64-linux-gnu goarm="" ;;
		arm) debarch=armhf triplet=arm-linux-gnueabihf goarm=7 ;;
		esac
		need_cross "$debarch" "$triplet-gcc" "gcc-$triplet" "$triplet"
		# PKG_CONFIG_LIBDIR points pkg-config (oto asks it for alsa) at the
		# board architecture's .pc files, not the build machine's.
		env CGO_ENABLED=1 GOOS=linux GOARCH="$arch" GOARM="$goarm" CC="$triplet-gcc" \
			PKG_CONFIG_LIBDIR="/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig" \
			"$go" build -trimpath -ldflags "$ldflags" -o "$dir/node" ./node
		# What the technician runs on the board comes with it (a copy that
		# fails stops the build: an archive without them cannot be installed
		# as docs/deploy.md says).
		cp scripts/install-node.sh "$dir/"
		# The technician's README, installed as /opt/loaxa-node/README (the
		# unit's Documentation=).
		cp scripts/loaxa-node-README "$dir/README"
		cp scripts/systemd/loaxa-node.service "$dir/"
		;;
	controller)
		env CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
			"$go" build -trimpath -ldflags "$ldflags" -o "$dir/controller" ./controller
		cp scripts/systemd/loaxa-controller.service "$dir/"
		# The admin's README, installed as
		# /usr/local/share/doc/loaxa-controller/README (the unit's
		# Documentation=).
		cp scripts/loaxa-controller-README "$dir/README"
		;;
	esac
	# Reproducible archives: fixed owner, order and times.
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
		-C "$stage" -czf "$out/$name.tar.gz" "$name"
	echo "built $out/$name.tar.gz in $((SECONDS - start))s"
done

(
	cd "$out"
	# Keep the sums of archives built earlier (other targets) beside the new.
	sha256sum loaxa-*.tar.gz >SHA256SUMS
)
echo "wrote $out/SHA256SUMS"

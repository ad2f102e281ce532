#!/usr/bin/env bash
# An emulated Raspberry Pi 5: Debian bookworm arm64 (Raspberry Pi OS is Debian arm64 with
# Python 3.11) run under qemu-user-static, laid out so that the suite *detects* a Pi 5, then the
# README's set-up and `pytest -m pi5 --benchmark-compare` inside it, on torch's own aarch64 wheel
# (OpenBLAS, not MKL). What it shows: that set-up, every pi5 recipe, the thread audit and
# `sdperf doctor` work on Arm. What it cannot: emulated speed says nothing about a Pi's speed.
#
# Needs: root (debootstrap, chroot, mounts); Debian's debootstrap and qemu-user-static (installed
# with apt-get when missing); binfmt_misc (mounted when missing); Debian's and PyPI's servers;
# about 8 GB of disk. Idempotent and cached: the root file system, and the virtual environment
# inside it, are built once (a changed pyproject.toml or constraints.txt re-installs, as `make` does).
#
# usage: sudo tools/emulated_pi5.sh [pytest options for the pi5 run, e.g. -k fp32 --sdperf-rounds=1]
# Environment: SDPERF_PI5_ROOTFS (default /var/cache/sdperf/pi5-bookworm-arm64),
#              SDPERF_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#              SDPERF_PI5_RUN_SIZE (default below; options given on the command line come after it, so they win),
#              SDPERF_PI5_TORCH_INDEX (default https://download.pytorch.org/whl/cpu: torch's CPU build, as a Pi
#              should have it; set it empty to take PyPI's torch, which on aarch64 is the CUDA build),
#              SDPERF_PI5_TORCH (a torch version to pin instead of the lock's, in the copy inside only: with
#              SDPERF_PI5_TORCH_INDEX= and 2.10.0, PyPI's newest aarch64 CPU build, where PyTorch's index is unreachable)
set -euo pipefail

ROOTFS=${SDPERF_PI5_ROOTFS:-/var/cache/sdperf/pi5-bookworm-arm64}
MIRROR=${SDPERF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "$0")/.." && pwd)
INSIDE=/opt/sdperf                 # the checkout, inside the root file system
RESULTS=/opt/sdperf-results        # what the run leaves, inside the root file system
STARTED=$(date +%s)
# The profile's built-in run size (2 workers of 1 warm-up and 5 rounds, 600 s a case) is sized for
# a board: under qemu an image takes 2 to 3 minutes, so every case would time out. One worker drawing
# two timed images still lets the determinism check compare two images, and the timeout fits qemu.
RUN_SIZE=${SDPERF_PI5_RUN_SIZE:---sdperf-workers=1 --sdperf-rounds=2 --sdperf-warmup=0 --sdperf-timeout=3600}
# Where torch comes from inside, as on a real Pi's runner (README: PIP_EXTRA_INDEX_URL in its .env). PyPI's
# aarch64 torch 2.13 is the CUDA build: 2.9 GB of nvidia-* packages and NVPL as its BLAS, not the CPU build's.
TORCH_INDEX=${SDPERF_PI5_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
# PyPI's aarch64 torch up to 2.10.0 is the CPU build (OpenBLAS); from 2.11 it is the CUDA one.
TORCH_VERSION=${SDPERF_PI5_TORCH:-}
case "$TORCH_VERSION" in
    ""|[0-9]*.[0-9]*) ;;
    *) printf 'emulated-pi5: SDPERF_PI5_TORCH=%q is not a torch version; give one like 2.10.0, or leave it empty for the lock'"'"'s\n' "$TORCH_VERSION" >&2; exit 2 ;;
esac

say() { printf 'emulated-pi5: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts): sudo $0 $*"
[ "$(uname -m)" = x86_64 ] || say "this host is $(uname -m), not x86_64: going on, qemu may not be needed"

# ------------------------------------------------------------------ torch's index, reachable?
if [ -n "$TORCH_INDEX" ]; then
    if ! python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=20)' \
            "$TORCH_INDEX" 2>/dev/null; then
        die "PyTorch's CPU index $TORCH_INDEX cannot be reached from here; the CPU build of torch a Pi should run comes
from there. To run on PyPI's torch instead (on aarch64 the CUDA build: NVPL as its BLAS, 2.9 GB of nvidia-*
packages; doctor warns of it), run again with SDPERF_PI5_TORCH_INDEX= (empty); for a CPU build with OpenBLAS, as
a Pi's, from PyPI: SDPERF_PI5_TORCH_INDEX= SDPERF_PI5_TORCH=2.10.0 (its newest aarch64 CPU build, older than the lock's)."
    fi
    say "torch from $TORCH_INDEX (PIP_EXTRA_INDEX_URL inside)"
else
    if [ -n "$TORCH_VERSION" ]; then
        say "torch $TORCH_VERSION from PyPI (SDPERF_PI5_TORCH_INDEX is empty; PyPI's aarch64 CPU builds end at 2.10.0)"
    else
        say "torch from PyPI (SDPERF_PI5_TORCH_INDEX is empty): on aarch64 the CUDA build, not a Pi's CPU build"
    fi
fi

# ------------------------------------------------------------------ host tools
missing=""
command -v debootstrap >/dev/null || missing="$missing debootstrap"
[ -e /usr/bin/qemu-aarch64-static ] || missing="$missing qemu-user-static"
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# ------------------------------------------------------------------ binfmt_misc: run arm64 binaries
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    say "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # Debian's own registration line; F (fix binary): the interpreter is opened now, so it also
    # runs inside the chroot, where the host's /usr/libexec path does not exist.
    line=$(grep -h '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf 2>/dev/null || true)
    [ -n "$line" ] || die "no qemu-aarch64 registration in /usr/lib/binfmt.d/qemu-aarch64.conf (package qemu-user-static)"
    case "${line##*:}" in *F*) ;; *) line="${line}F" ;; esac
    say "registering qemu-aarch64 with binfmt_misc"
    printf '%s' "$line" > /proc/sys/fs/binfmt_misc/register
fi

# ------------------------------------------------------------------ the root file system (cached)
if [ ! -e "$ROOTFS/.sdperf-rootfs-ready" ]; then
    say "building Debian bookworm arm64 in $ROOTFS (debootstrap from $MIRROR)"
    rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
    debootstrap --arch=arm64 --variant=minbase --foreign \
        --include=python3,python3-venv,make,ca-certificates,procps,git \
        bookworm "$ROOTFS" "$MIRROR" >/dev/null
    cp /usr/bin/qemu-aarch64-static "$ROOTFS/usr/bin/"
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >/dev/null
    echo "deb $MIRROR bookworm main" > "$ROOTFS/etc/apt/sources.list"
    touch "$ROOTFS/.sdperf-rootfs-ready"
else
    say "root file system cached: $ROOTFS"
fi

# ------------------------------------------------------------------ a Raspberry Pi 5, as the suite reads it
# /proc/cpuinfo with a Pi 5's Revision code (d04170: Pi 5, 8 GB), laid over the real one; the
# device tree goes where the kernel keeps it (/sys/firmware/devicetree/base). The x86 kernel has
# no /proc/device-tree link, and procfs takes no new entries, so detection goes by the revision
# code: the path a Pi without a mounted device tree takes. The fake files are the detection tests'.
FAKE=$(mktemp -d)
python3 - "$FAKE" <<'EOF'
import sys
from pathlib import Path

fake = Path(sys.argv[1])
blocks = [
    f"processor\t: {n}\nBogoMIPS\t: 108.00\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n"
    for n in range(4)
]
tail = "Hardware\t: BCM2835\nRevision\t: d04170\nSerial\t\t: 00000000deadbeef\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
(fake / "cpuinfo").write_text("\n".join(blocks) + "\n" + tail)
tree = fake / "devicetree" / "base"
tree.mkdir(parents=True)
(tree / "compatible").write_bytes(b"raspberrypi,5-model-b\0brcm,bcm2712\0")
(tree / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
EOF

MOUNTS=()
mount_in() {  # mount_in ARGS... TARGET (inside ROOTFS); unmounted in reverse order on exit
    local target="$ROOTFS${*: -1}"
    mkdir -p "$target" 2>/dev/null || true
    mount "${@:1:$#-1}" "$target"
    MOUNTS=("$target" "${MOUNTS[@]}")
}
cleanup() {
    for target in "${MOUNTS[@]}"; do umount -l "$target" 2>/dev/null || true; done
    rm -rf "$FAKE"
}
trap cleanup EXIT

mount_in -t proc proc /proc
mount_in -t sysfs sysfs /sys
mount_in --bind /dev /dev
mount_in -t devpts devpts /dev/pts
mount_in --bind "$FAKE/cpuinfo" /proc/cpuinfo
mount_in -t tmpfs tmpfs /sys/firmware
mkdir -p "$ROOTFS/sys/firmware/devicetree"
cp -r "$FAKE/devicetree/base" "$ROOTFS/sys/firmware/devicetree/"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# The board trusts what this host trusts (a network behind a TLS-inspecting proxy has its own CA
# in /usr/local/share/ca-certificates); pip inside is told to use the system store, not certifi's.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 || say "could not update the certificates inside"
fi

# ------------------------------------------------------------------ the checkout, copied in
say "copying the checkout ($(git -C "$REPO" rev-parse --short HEAD)) to $ROOTFS$INSIDE"
mkdir -p "$ROOTFS$INSIDE" "$ROOTFS$RESULTS"
# Tracked and untracked-but-not-ignored files, mtimes kept: make re-installs only what changed.
git -C "$REPO" ls-files --cached --others --exclude-standard -z \
    | (cd "$REPO" && tar --null -T - -cf -) | tar -xf - -C "$ROOTFS$INSIDE"
if [ -n "$TORCH_VERSION" ]; then
    # The copy's pin only, its mtime kept: the environment marker below says when to rebuild.
    lock="$ROOTFS$INSIDE/constraints.txt"
    sed -i "s/^torch==.*/torch==$TORCH_VERSION/" "$lock" && touch -r "$REPO/constraints.txt" "$lock"
    say "torch $TORCH_VERSION instead of the lock's $(grep -m1 '^torch==' "$REPO/constraints.txt" | cut -d= -f3) (SDPERF_PI5_TORCH; in the copy inside only)"
fi

TRUST=/etc/ssl/certs/ca-certificates.crt
inside() { chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    PIP_CERT=$TRUST SSL_CERT_FILE=$TRUST REQUESTS_CA_BUNDLE=$TRUST ${TORCH_INDEX:+PIP_EXTRA_INDEX_URL=$TORCH_INDEX} \
    SDPERF_HISTORY=$RESULTS/history bash -c "cd $INSIDE && $1"; }

say "inside: $(inside 'uname -m; python3 --version' | tr '\n' ' ')"

# ------------------------------------------------------------------ the README's set-up, then the Pi run
step() {  # step TITLE COMMAND: its exit status is the command's
    local t0 rc=0; t0=$(date +%s); say "step: $1"
    inside "$2" || rc=$?
    say "step done in $(( $(date +%s) - t0 )) s (exit status $rc): $1"
    return $rc
}

# pip keeps an installed torch that satisfies the pin, whichever build it is: another index, another environment.
TORCH_FROM="${TORCH_INDEX:-pypi} ${TORCH_VERSION:-lock}"
if [ "$(cat "$ROOTFS$INSIDE/.venv/.sdperf-torch-index" 2>/dev/null || echo none)" != "$TORCH_FROM" ]; then
    [ -d "$ROOTFS$INSIDE/.venv" ] && say "torch's index or version changed: the virtual environment inside is built again"
    rm -rf "$ROOTFS$INSIDE/.venv"
fi
step "set-up (make setup: the virtual environment, the pinned stack, Debian libraries)" \
    "make setup && echo '$TORCH_FROM' > .venv/.sdperf-torch-index"
say "inside: detected as: $(inside ".venv/bin/python -c 'from pathlib import Path; from sdperf.host.detection import detect_host; h = detect_host(Path(\"/\")); print(h.primary, \"-\", h.reasons[h.primary])'")"
step "sdperf doctor (the detected profile)" ".venv/bin/sdperf doctor > $RESULTS/doctor.txt 2>&1; echo \"doctor exit \$?\" >> $RESULTS/doctor.txt; cat $RESULTS/doctor.txt"
status=0
EXTRA=""  # the options as given, quoted again for the shell inside (none: no argument, not '')
[ $# -eq 0 ] || EXTRA=$(printf '%q ' "$@")
say "run size under emulation: $RUN_SIZE (SDPERF_PI5_RUN_SIZE; options given after it win)"
step "pytest -m pi5 --benchmark-compare $RUN_SIZE $EXTRA" \
    ".venv/bin/python -m pytest -m pi5 --benchmark-compare --benchmark-json=$RESULTS/pi5.json -rs -p no:cacheprovider $RUN_SIZE $EXTRA \
     2>&1 | tee $RESULTS/pytest.txt; exit \${PIPESTATUS[0]}" || status=$?

# What each thread recipe's worker ran with: threadpoolctl's pools, OpenBLAS's threading layer.
inside ".venv/bin/python - $RESULTS/pi5.json" <<'EOF' | tee "$ROOTFS$RESULTS/pools.txt" || true
import json, sys

run = json.load(open(sys.argv[1]))
for case in run["sdperf"]["cases"]:
    audit = (case.get("load") or {}).get("audit")
    if case.get("kind") != "latency" or not audit:
        continue
    env = audit.get("environment") or {}
    threads = " ".join(f"{k}={env.get(k)}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"{case['case_id']} ({threads}; torch {audit.get('torch_threads')} threads; BLAS {audit.get('torch_blas')})")
    for pool in audit.get("threadpools") or []:
        print(f"    {pool.get('internal_api')} {pool.get('num_threads')} threads, "
              f"threading layer {pool.get('threading_layer', '-')}, {pool.get('filepath')}")
EOF

say "pytest exit status $status; wall time $(( $(date +%s) - STARTED )) s"
say "results: $ROOTFS$RESULTS (pytest.txt, pi5.json, doctor.txt, pools.txt, history/)"
exit $status

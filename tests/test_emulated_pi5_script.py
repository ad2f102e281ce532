"""tools/emulated_pi5.sh without the emulation: its shell parses, and the Pi 5 it lays out is
detected as a Pi 5 by the suite's own detection (the run itself needs root and qemu)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from sdperf.host.detection import detect_host

SCRIPT = REPO / "tools" / "emulated_pi5.sh"


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


def test_the_fake_board_it_lays_out_is_detected_as_a_pi5(tmp_path: Path) -> None:
    writer = re.search(r"python3 - \"\$FAKE\" <<'EOF'\n(.*?)\nEOF\n", SCRIPT.read_text(), re.S).group(1)
    fake = tmp_path / "fake"
    fake.mkdir()
    subprocess.run([sys.executable, "-", str(fake)], input=writer, text=True, check=True, timeout=60)
    # Where the script mounts them: cpuinfo over /proc/cpuinfo, the tree under /sys/firmware.
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (fake / "cpuinfo").rename(root / "proc" / "cpuinfo")
    host = detect_host(root)
    assert host.primary == "pi5", host.reasons
    assert "revision code 0xd04170 in /proc/cpuinfo" in host.reasons["pi5"]
    assert (fake / "devicetree" / "base" / "compatible").read_bytes().split(b"\0")[:2] == [
        b"raspberrypi,5-model-b", b"brcm,bcm2712"
    ]


def _options_as_passed_inside(*given: str) -> str:
    """What the script hands the pytest inside for the options `given` to it, run by bash."""
    lines = [line for line in SCRIPT.read_text().splitlines() if line.startswith(("EXTRA=", "[ $# -eq 0 ]"))]
    assert len(lines) == 2, lines
    snippet = "\n".join(lines) + '\nprintf "%s" "$EXTRA"'
    return subprocess.run(["bash", "-c", snippet, "script", *given], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_options_reach_the_pytest_inside_as_given_and_none_as_none() -> None:
    assert _options_as_passed_inside() == ""  # not '': pytest would collect the whole checkout
    assert _options_as_passed_inside("-k", "fp32 or omp1", "--sdperf-rounds=1") == r"-k fp32\ or\ omp1 --sdperf-rounds=1 "


def test_the_default_run_size_is_options_of_the_suite() -> None:
    size = re.search(r"RUN_SIZE=\$\{SDPERF_PI5_RUN_SIZE:-(.*)\}", SCRIPT.read_text()).group(1).split()
    assert size and all(option.startswith("--sdperf-") for option in size)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "perf"), "-m", "pi5", "--sdperf-profile", "pi5", *size,
         "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "15/" in done.stdout  # 5 recipes, a latency, determinism and fidelity case each


def test_an_unreachable_torch_index_stops_it_before_anything_naming_the_way_on(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the script checks for root first; this test runs it as root up to its torch index check")
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SDPERF_PI5_TORCH_INDEX": "http://127.0.0.1:9/simple",
             "SDPERF_PI5_ROOTFS": str(tmp_path / "rootfs")},
    )
    assert done.returncode == 1
    assert "PyTorch's CPU index http://127.0.0.1:9/simple cannot be reached from here" in done.stderr
    assert "SDPERF_PI5_TORCH_INDEX= (empty)" in done.stderr
    assert "SDPERF_PI5_TORCH_INDEX= SDPERF_PI5_TORCH=2.10.0" in done.stderr
    assert not (tmp_path / "rootfs").exists()  # nothing built, nothing mounted


def test_a_torch_pin_that_is_no_version_is_refused_before_anything(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SDPERF_PI5_TORCH": "latest", "SDPERF_PI5_ROOTFS": str(tmp_path / "rootfs")},
    )
    assert done.returncode == 2
    assert "SDPERF_PI5_TORCH=latest is not a torch version; give one like 2.10.0" in done.stderr
    assert not (tmp_path / "rootfs").exists()

"""tools/emulated_pi5.sh without the emulation: its shell parses, and the Pi 5 it lays out is
detected as a Pi 5 by the suite's own detection (the run itself needs root and qemu)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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

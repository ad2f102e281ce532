"""Small readers under a root folder: a missing or unreadable file means "unknown", never an
exception, so tests describe a host as a fake file tree. Stdlib only."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

Run = Callable[..., subprocess.CompletedProcess]


def read_text(path: Path) -> str | None:
    """File contents, or None when it is missing or unreadable."""
    try:
        return path.read_text(errors="replace")
    except (OSError, ValueError):
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def cpu_dirs(root: Path) -> list[Path]:
    """`/sys/devices/system/cpu/cpuN` folders in numeric order."""
    base = root / "sys/devices/system/cpu"
    try:
        dirs = [p for p in base.iterdir() if re.fullmatch(r"cpu\d+", p.name)]
    except OSError:
        return []
    return sorted(dirs, key=lambda p: int(p.name[3:]))


def parse_cpu_list(text: str) -> int | None:
    """Count CPUs in a kernel cpu list such as "0-3,6"."""
    count = 0
    try:
        for part in text.strip().split(","):
            if not part:
                continue
            low, _, high = part.partition("-")
            count += int(high or low) - int(low) + 1
    except ValueError:
        return None
    return count or None


def run_text(run: Run, cmd: Sequence[str]) -> str | None:
    """stdout of `cmd`, or None when it is missing, fails or hangs."""
    try:
        done = run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout if isinstance(done.stdout, str) else None


def to_int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None

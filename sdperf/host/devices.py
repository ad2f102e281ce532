"""GPUs, memory and system libraries."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sdperf.host.files import Run, read_text, run_text, to_int


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as nvidia-smi reports it."""

    name: str
    total_mib: int
    driver: str

    def to_json(self) -> dict:
        return {"name": self.name, "total_mib": self.total_mib, "driver": self.driver}


NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
)


def read_gpus(run: Run = subprocess.run) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs from nvidia-smi; () when it is missing or fails."""
    output = run_text(run, NVIDIA_SMI_QUERY)
    if output is None:
        return ()
    gpus = []
    for line in output.splitlines():
        # rsplit: the name is the only field that could contain a comma.
        fields = [f.strip() for f in line.rsplit(",", 2)]
        if len(fields) != 3 or not fields[0]:
            continue
        total = to_int(fields[1])
        if total is None:
            continue  # "[N/A]" or similar: not a usable CUDA device for us
        gpus.append(GpuInfo(name=fields[0], total_mib=total, driver=fields[2]))
    return tuple(gpus)


def read_memory_mb(root: Path = Path("/")) -> int | None:
    """MemTotal from /proc/meminfo in MB (MiB), or None."""
    text = read_text(Path(root) / "proc/meminfo") or ""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


TRIPLETS: Mapping[str, str] = MappingProxyType(
    {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu",
     "armv7l": "arm-linux-gnueabihf"}
)


def find_library(
    soname: str, root: Path = Path("/"), architecture: str | None = None
) -> str | None:
    """Path of e.g. "libjemalloc.so.2" in the usual system folders, or None.

    Feeds `doctor.diagnose(libraries=...)`, which does no I/O itself.
    """
    root = Path(root)
    arch = architecture if architecture is not None else os.uname().machine
    folders = ["usr/lib64", "usr/local/lib", "usr/lib"]
    if arch in TRIPLETS:
        folders.insert(0, f"usr/lib/{TRIPLETS[arch]}")
    for folder in folders:
        if (root / folder / soname).exists():
            return "/" + f"{folder}/{soname}"
    return None

"""Which profiles a host fits, from what the readers found, with a reason for each.

Every reader takes `root` (all paths resolve under it) and, where a command is
needed, `run` (a `subprocess.run` stand-in), so tests describe a host as a fake
file tree. Stdlib only: this module loads in the pytest process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sdperf.host.cpu import INTEL_SERVER_MODELS, CpuInfo, read_cpu
from sdperf.host.devices import GpuInfo, read_gpus, read_memory_mb
from sdperf.host.files import Run
from sdperf.host.pi import PiInfo, read_pi

PROFILES = ("pi4", "pi5", "sapphire_rapids", "cuda_lowvram", "cpu")

# Most specific first: `HostInfo.primary` is the first of these that matches.
SPECIFICITY = ("pi5", "pi4", "cuda_lowvram", "sapphire_rapids", "cpu")

LOWVRAM_MIB = 6144
"""VRAM of the card `cuda_lowvram` emulates; bigger cards are capped to it."""


@dataclass(frozen=True)
class HostInfo:
    """Everything detected about the host, and which benchmark profiles it fits."""

    cpu: CpuInfo
    pi: PiInfo | None
    gpus: tuple[GpuInfo, ...]
    memory_total_mb: int | None
    matches: tuple[str, ...]
    reasons: Mapping[str, str]

    @property
    def primary(self) -> str:
        """Most specific matching profile (pi5, pi4, cuda_lowvram, sapphire_rapids, cpu)."""
        return next((p for p in SPECIFICITY if p in self.matches), "cpu")

    def to_json(self) -> dict:
        return {
            "primary": self.primary,
            "matches": list(self.matches),
            "reasons": dict(self.reasons),
            "cpu": self.cpu.to_json(),
            "pi": None if self.pi is None else self.pi.to_json(),
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "memory_total_mb": self.memory_total_mb,
        }


def _pi_reason(pi: PiInfo | None, want: str) -> tuple[bool, str]:
    label = {"pi4": "Pi 4", "pi5": "Pi 5"}[want]
    if pi is None:
        return False, (
            "no Raspberry Pi in /proc/device-tree/compatible or the /proc/cpuinfo revision code"
        )
    if pi.board == want:
        return True, f"host is a {pi.describe()}"
    return False, f"host is a {pi.describe()}, not a {label}"


def _sapphire_reason(cpu: CpuInfo) -> tuple[bool, str]:
    described = cpu.describe()
    # "an x86_64", "an aarch64", "a riscv64"
    desc = f"host is {'an' if described[:1] in 'aeioux' else 'a'} {described}"
    if not cpu.vendor:
        return False, "CPU vendor unknown (no vendor_id in /proc/cpuinfo), so no Intel AMX"
    if not cpu.is_intel:
        return False, f"{desc}, not an Intel CPU with AMX"
    known = INTEL_SERVER_MODELS.get(cpu.model or -1) if cpu.family == 6 else None
    amx = ", ".join(f for f in sorted(cpu.flags) if f.startswith("amx_"))
    if known and known[1]:
        if cpu.has_amx:
            return True, f"{desc}, AMX flags {amx}"
        # Kernels before 5.16 and some VMs hide AMX although the part has it.
        return True, f"{desc}, but AMX flags are missing from /proc/cpuinfo (old kernel or VM?)"
    if cpu.has_amx:
        return True, f"{desc}, not a listed model but it has AMX flags {amx}"
    return False, f"{desc}, no AMX"


def _cuda_reason(gpus: tuple[GpuInfo, ...]) -> tuple[bool, str]:
    if not gpus:
        return False, "no NVIDIA GPU found by nvidia-smi"
    gpu = gpus[0]
    more = f" (GPU 0 of {len(gpus)})" if len(gpus) > 1 else ""
    if gpu.total_mib > LOWVRAM_MIB:
        cap = f"more than a 6 GB card: --sdperf-vram-cap {LOWVRAM_MIB} emulates one"
    else:
        cap = f"no cap needed (<= {LOWVRAM_MIB} MiB)"
    return True, f"{gpu.name}{more} has {gpu.total_mib} MiB VRAM, {cap}"


def _cpu_reason(cpu: CpuInfo, memory_mb: int | None) -> str:
    physical = "" if cpu.physical_cores is None else f", {cpu.physical_cores} physical"
    memory = "unknown RAM" if memory_mb is None else f"{memory_mb} MB RAM"
    cores = f"{cpu.logical_cores} logical cores" if cpu.logical_cores else "unknown core count"
    described = cpu.describe() or "unknown CPU"
    return f"generic profile, always matches: {described}, {cores}{physical}, {memory}"


def match_profiles(
    cpu: CpuInfo, pi: PiInfo | None, gpus: tuple[GpuInfo, ...], memory_mb: int | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """(matching profiles, most specific first; a one-line reason for every profile)."""
    results = {
        "pi5": _pi_reason(pi, "pi5"),
        "pi4": _pi_reason(pi, "pi4"),
        "cuda_lowvram": _cuda_reason(gpus),
        "sapphire_rapids": _sapphire_reason(cpu),
        "cpu": (True, _cpu_reason(cpu, memory_mb)),
    }
    matches = tuple(p for p in SPECIFICITY if results[p][0])
    return matches, {p: results[p][1] for p in PROFILES}


def detect_host(
    root: Path = Path("/"), run: Run = subprocess.run, architecture: str | None = None
) -> HostInfo:
    """Read CPU, Pi board, GPUs and memory, and match them against `PROFILES`."""
    cpu = read_cpu(root, architecture)
    pi = read_pi(root)
    gpus = read_gpus(run)
    memory = read_memory_mb(root)
    matches, reasons = match_profiles(cpu, pi, gpus, memory)
    return HostInfo(
        cpu=cpu,
        pi=pi,
        gpus=gpus,
        memory_total_mb=memory,
        matches=matches,
        reasons=MappingProxyType(reasons),
    )

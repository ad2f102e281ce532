"""The CPU from /proc/cpuinfo and /sys: vendor, model, flags, cores."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sdperf.host.files import cpu_dirs, parse_cpu_list, read_int, read_text, to_int

# Intel family 6 server models: name, and whether the part has AMX.
INTEL_SERVER_MODELS: Mapping[int, tuple[str, bool]] = MappingProxyType(
    {
        143: ("Sapphire Rapids", True),
        207: ("Emerald Rapids", True),
        173: ("Granite Rapids", True),
        174: ("Granite Rapids", True),
        106: ("Ice Lake server", False),
        108: ("Ice Lake server", False),
        85: ("Skylake/Cascade Lake server", False),
    }
)
AMX_FLAGS = ("amx_tile", "amx_bf16")

# /proc/cpuinfo "CPU implementer" codes and, for Arm Ltd, "CPU part" codes.
ARM_IMPLEMENTERS: Mapping[int, str] = MappingProxyType(
    {0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x48: "HiSilicon",
     0x4E: "NVIDIA", 0x51: "Qualcomm", 0x61: "Apple", 0xC0: "Ampere"}
)
ARM_PARTS: Mapping[int, str] = MappingProxyType(
    {0xD03: "Cortex-A53", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57",
     0xD08: "Cortex-A72", 0xD09: "Cortex-A73", 0xD0A: "Cortex-A75",
     0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD40: "Neoverse-V1",
     0xD41: "Cortex-A78", 0xD49: "Neoverse-N2", 0xD4F: "Neoverse-V2"}
)

@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the CPU."""

    architecture: str
    vendor: str
    model_name: str
    family: int | None
    model: int | None
    flags: frozenset[str]
    logical_cores: int
    physical_cores: int | None

    @property
    def is_intel(self) -> bool:
        return self.vendor == "GenuineIntel"

    @property
    def intel_model_name(self) -> str | None:
        """Server codename for known Intel family 6 models, else None."""
        if not self.is_intel or self.family != 6 or self.model is None:
            return None
        known = INTEL_SERVER_MODELS.get(self.model)
        return known[0] if known else None

    @property
    def has_amx(self) -> bool:
        return all(flag in self.flags for flag in AMX_FLAGS)

    def describe(self) -> str:
        """One-line description such as "x86_64 Intel family 6 model 143 (Sapphire Rapids)"."""
        arch = self.architecture or "unknown-architecture"
        if self.is_intel:
            text = f"{arch} Intel family {_or_unknown(self.family)} model {_or_unknown(self.model)}"
            codename = self.intel_model_name
            return f"{text} ({codename})" if codename else text
        vendor = {"AuthenticAMD": "AMD"}.get(self.vendor, self.vendor) or "unknown vendor"
        if self.model_name.startswith(vendor):
            vendor = ""  # "AMD EPYC 9654" already names it
        parts = [arch, vendor, self.model_name]
        return " ".join(p for p in parts if p)

    def to_json(self) -> dict:
        return {
            "architecture": self.architecture,
            "vendor": self.vendor,
            "model_name": self.model_name,
            "family": self.family,
            "model": self.model,
            "flags": sorted(self.flags),
            "logical_cores": self.logical_cores,
            "physical_cores": self.physical_cores,
        }


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def parse_cpuinfo(text: str) -> tuple[list[dict[str, str]], int]:
    """Blank-line separated blocks of "key : value", and the "processor" line count."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            processors += 1
        current.setdefault(key, value.strip())
    if current:
        blocks.append(current)
    return blocks, processors


def first_field(blocks: list[dict[str, str]], key: str) -> str | None:
    for block in blocks:
        if key in block:
            return block[key]
    return None


def _physical_cores(blocks: list[dict[str, str]], root: Path) -> int | None:
    pairs = {
        (b["physical id"], b["core id"]) for b in blocks if "physical id" in b and "core id" in b
    }
    if pairs:
        return len(pairs)
    # Arm boards list no topology in cpuinfo; sysfs has it per CPU.
    topo: set[tuple[int, int]] = set()
    for cpu_dir in cpu_dirs(root):
        package = read_int(cpu_dir / "topology/physical_package_id")
        core = read_int(cpu_dir / "topology/core_id")
        if package is None or core is None:
            return None
        topo.add((package, core))
    return len(topo) or None


def read_cpu(root: Path = Path("/"), architecture: str | None = None) -> CpuInfo:
    """Parse /proc/cpuinfo (x86 or Arm layout); `architecture` defaults to os.uname()."""
    root = Path(root)
    blocks, processors = parse_cpuinfo(read_text(root / "proc/cpuinfo") or "")
    flags_text = first_field(blocks, "flags") or first_field(blocks, "Features") or ""

    vendor = first_field(blocks, "vendor_id") or ""
    model_name = first_field(blocks, "model name") or ""
    implementer = to_int(first_field(blocks, "CPU implementer"), 16)
    if not vendor and implementer is not None:
        vendor = ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer:#x}")
    if not model_name and implementer is not None:
        part = to_int(first_field(blocks, "CPU part"), 16)
        if part is not None:
            named = ARM_PARTS.get(part) if implementer == 0x41 else None
            model_name = named or f"CPU part {part:#x}"

    logical = processors
    if not logical:
        logical = parse_cpu_list(read_text(root / "sys/devices/system/cpu/online") or "") or 0
    if not logical and root == Path("/"):
        logical = os.cpu_count() or 0

    return CpuInfo(
        architecture=architecture if architecture is not None else os.uname().machine,
        vendor=vendor,
        model_name=model_name,
        # Arm cpuinfo has no "cpu family"/"model" keys; "CPU part" is not a model number.
        family=to_int(first_field(blocks, "cpu family")),
        model=to_int(first_field(blocks, "model")),
        flags=frozenset(flags_text.split()),
        logical_cores=logical,
        physical_cores=_physical_cores(blocks, root),
    )

"""Host detection from /proc and /sys, so results say what they ran on.

Every reader takes `root` (all paths resolve under it) and, where a command is
needed, `run` (a `subprocess.run` stand-in), so tests describe a host as a fake
file tree. A missing or unreadable file means "unknown", never an exception.
Stdlib only: this module loads in the pytest process.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

PROFILES = ("pi4", "pi5", "sapphire_rapids", "cuda_lowvram", "cpu")

# Most specific first: `HostInfo.primary` is the first of these that matches.
SPECIFICITY = ("pi5", "pi4", "cuda_lowvram", "sapphire_rapids", "cpu")

LOWVRAM_MIB = 6144
"""VRAM of the card `cuda_lowvram` emulates; bigger cards are capped to it."""

PI_THROTTLE_SOFT_C = 80.0
"""Pi firmware starts throttling the Arm cores here (hard limit at 85 C)."""

THROTTLED_SYSFS = "sys/devices/platform/soc/soc:firmware/get_throttled"

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

# Raspberry Pi new-style revision code fields.
_REV_NEW_STYLE = 1 << 23
# Type field (bits 4-11): 4B, 400, CM4, CM4S are Pi 4s; 5, CM5, 500, CM5 Lite are Pi 5s.
_PI_TYPES: Mapping[int, str] = MappingProxyType(
    {0x11: "pi4", 0x13: "pi4", 0x14: "pi4", 0x15: "pi4",
     0x17: "pi5", 0x18: "pi5", 0x19: "pi5", 0x1A: "pi5"}
)
_PI_SOCS: Mapping[str, str] = MappingProxyType({"brcm,bcm2711": "pi4", "brcm,bcm2712": "pi5"})
_PI_SOC_CODES: Mapping[int, str] = MappingProxyType({3: "pi4", 4: "pi5"})  # bits 12-15
_PI_RAM_MB = (256, 512, 1024, 2048, 4096, 8192, 16384)

Run = Callable[..., subprocess.CompletedProcess]


# ---------------------------------------------------------------- file helpers


def _read_text(path: Path) -> str | None:
    """File contents, or None when it is missing or unreadable."""
    try:
        return path.read_text(errors="replace")
    except (OSError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _cpu_dirs(root: Path) -> list[Path]:
    """`/sys/devices/system/cpu/cpuN` folders in numeric order."""
    base = root / "sys/devices/system/cpu"
    try:
        dirs = [p for p in base.iterdir() if re.fullmatch(r"cpu\d+", p.name)]
    except OSError:
        return []
    return sorted(dirs, key=lambda p: int(p.name[3:]))


def _parse_cpu_list(text: str) -> int | None:
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


def _run_text(run: Run, cmd: Sequence[str]) -> str | None:
    """stdout of `cmd`, or None when it is missing, fails or hangs."""
    try:
        done = run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout if isinstance(done.stdout, str) else None


# ------------------------------------------------------------------------ CPU


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


def _parse_cpuinfo(text: str) -> tuple[list[dict[str, str]], int]:
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


def _first(blocks: list[dict[str, str]], key: str) -> str | None:
    for block in blocks:
        if key in block:
            return block[key]
    return None


def _to_int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def _physical_cores(blocks: list[dict[str, str]], root: Path) -> int | None:
    pairs = {
        (b["physical id"], b["core id"]) for b in blocks if "physical id" in b and "core id" in b
    }
    if pairs:
        return len(pairs)
    # Arm boards list no topology in cpuinfo; sysfs has it per CPU.
    topo: set[tuple[int, int]] = set()
    for cpu_dir in _cpu_dirs(root):
        package = _read_int(cpu_dir / "topology/physical_package_id")
        core = _read_int(cpu_dir / "topology/core_id")
        if package is None or core is None:
            return None
        topo.add((package, core))
    return len(topo) or None


def read_cpu(root: Path = Path("/"), architecture: str | None = None) -> CpuInfo:
    """Parse /proc/cpuinfo (x86 or Arm layout); `architecture` defaults to os.uname()."""
    root = Path(root)
    blocks, processors = _parse_cpuinfo(_read_text(root / "proc/cpuinfo") or "")
    flags_text = _first(blocks, "flags") or _first(blocks, "Features") or ""

    vendor = _first(blocks, "vendor_id") or ""
    model_name = _first(blocks, "model name") or ""
    implementer = _to_int(_first(blocks, "CPU implementer"), 16)
    if not vendor and implementer is not None:
        vendor = ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer:#x}")
    if not model_name and implementer is not None:
        part = _to_int(_first(blocks, "CPU part"), 16)
        if part is not None:
            named = ARM_PARTS.get(part) if implementer == 0x41 else None
            model_name = named or f"CPU part {part:#x}"

    logical = processors
    if not logical:
        logical = _parse_cpu_list(_read_text(root / "sys/devices/system/cpu/online") or "") or 0
    if not logical and root == Path("/"):
        logical = os.cpu_count() or 0

    return CpuInfo(
        architecture=architecture if architecture is not None else os.uname().machine,
        vendor=vendor,
        model_name=model_name,
        # Arm cpuinfo has no "cpu family"/"model" keys; "CPU part" is not a model number.
        family=_to_int(_first(blocks, "cpu family")),
        model=_to_int(_first(blocks, "model")),
        flags=frozenset(flags_text.split()),
        logical_cores=logical,
        physical_cores=_physical_cores(blocks, root),
    )


# --------------------------------------------------------------- Raspberry Pi


@dataclass(frozen=True)
class PiInfo:
    """A Raspberry Pi board: `board` is "pi4", "pi5", or None for another Pi."""

    board: str | None
    model_string: str
    compatible: tuple[str, ...]
    revision: int | None
    board_type: int | None
    ram_mb: int | None

    def describe(self) -> str:
        name = self.model_string or {"pi4": "Raspberry Pi 4", "pi5": "Raspberry Pi 5"}.get(
            self.board or "", "Raspberry Pi"
        )
        if self.compatible:
            return f"{name} ({self.compatible[0]} in /proc/device-tree/compatible)"
        return f"{name} (revision code {self.revision:#x} in /proc/cpuinfo)"

    def to_json(self) -> dict:
        return {
            "board": self.board,
            "model_string": self.model_string,
            "compatible": list(self.compatible),
            "revision": None if self.revision is None else f"{self.revision:x}",
            "board_type": self.board_type,
            "ram_mb": self.ram_mb,
        }


def read_compatible(root: Path = Path("/")) -> tuple[str, ...]:
    """NUL-separated strings of /proc/device-tree/compatible; () when absent."""
    text = _read_text(Path(root) / "proc/device-tree/compatible") or ""
    return tuple(s.strip() for s in text.split("\0") if s.strip())


def decode_revision(revision: int) -> tuple[str | None, int | None, int | None]:
    """(board, type, RAM MB) from a Pi revision code; Nones for old-style codes."""
    if not revision & _REV_NEW_STYLE:
        return None, None, None
    board_type = (revision >> 4) & 0xFF
    ram_index = (revision >> 20) & 0x7
    ram_mb = _PI_RAM_MB[ram_index] if ram_index < len(_PI_RAM_MB) else None
    board = _PI_TYPES.get(board_type) or _PI_SOC_CODES.get((revision >> 12) & 0xF)
    return board, board_type, ram_mb


def read_pi(root: Path = Path("/")) -> PiInfo | None:
    """Identify a Raspberry Pi from the device tree, else its revision code.

    `Hardware : BCM2835` in /proc/cpuinfo is on every Pi model and is ignored.
    """
    root = Path(root)
    compatible = read_compatible(root)
    blocks, _ = _parse_cpuinfo(_read_text(root / "proc/cpuinfo") or "")
    revision = _to_int(_first(blocks, "Revision"), 16)
    board, board_type, ram_mb = decode_revision(revision) if revision is not None else (None,) * 3

    if compatible:
        if not any(s.startswith("raspberrypi,") for s in compatible):
            return None  # another device-tree board: its cpuinfo Revision means nothing
        # The SoC names the board class (Pi 400/CM4 are Pi 4s, Pi 500/CM5 are Pi 5s).
        board = next((_PI_SOCS[s] for s in compatible if s in _PI_SOCS), board)
    elif revision is None or not revision & _REV_NEW_STYLE:
        return None

    model_text = _read_text(root / "proc/device-tree/model") or _first(blocks, "Model") or ""
    return PiInfo(
        board=board,
        model_string=model_text.replace("\0", "").strip(),
        compatible=compatible,
        revision=revision,
        board_type=board_type,
        ram_mb=ram_mb,
    )


@dataclass(frozen=True)
class ThrottleState:
    """Pi firmware throttle bits; `raw` is None when a source exists but is unreadable."""

    raw: int | None
    source: str

    def _bit(self, bit: int) -> bool:
        return self.raw is not None and bool(self.raw >> bit & 1)

    @property
    def under_voltage_now(self) -> bool:
        return self._bit(0)

    @property
    def freq_capped_now(self) -> bool:
        return self._bit(1)

    @property
    def throttled_now(self) -> bool:
        return self._bit(2)

    @property
    def soft_temp_limit_now(self) -> bool:
        return self._bit(3)

    @property
    def under_voltage_since_boot(self) -> bool:
        return self._bit(16)

    @property
    def freq_capped_since_boot(self) -> bool:
        return self._bit(17)

    @property
    def throttled_since_boot(self) -> bool:
        return self._bit(18)

    @property
    def soft_temp_limit_since_boot(self) -> bool:
        return self._bit(19)

    def problems(self) -> list[str]:
        """Human sentences for each set bit; empty when the Pi is fine."""
        checks = (
            (self.under_voltage_now, "under-voltage now"),
            (self.freq_capped_now, "Arm frequency capped now"),
            (self.throttled_now, "throttled now"),
            (self.soft_temp_limit_now, "soft temperature limit active now"),
            (self.under_voltage_since_boot, "under-voltage has occurred since boot"),
            (self.freq_capped_since_boot, "Arm frequency capping has occurred since boot"),
            (self.throttled_since_boot, "throttling has occurred since boot"),
            (self.soft_temp_limit_since_boot, "soft temperature limit has occurred since boot"),
        )
        return [f"{text} ({self.source} = {self.raw:#x})" for hit, text in checks if hit]

    def to_json(self) -> dict:
        return {"raw": self.raw, "source": self.source, "problems": self.problems()}


def parse_throttled(text: str) -> int | None:
    """Parse "throttled=0x50005", "0x50005" or "50005" (always hex)."""
    text = text.strip()
    if text.startswith("throttled="):
        text = text[len("throttled="):]
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if value >= 0 else None


def _find_hwmon(root: Path, name: str) -> Path | None:
    for name_file in sorted((root / "sys/class/hwmon").glob("hwmon*/name")):
        if (_read_text(name_file) or "").strip() == name:
            return name_file.parent
    return None


def read_throttle(root: Path = Path("/"), run: Run = subprocess.run) -> ThrottleState | None:
    """Throttle state from sysfs, else `vcgencmd get_throttled`, else hwmon rpi_volt.

    None when no source exists (not a Pi). hwmon only knows under-voltage now (bit 0).
    """
    root = Path(root)
    unreadable: list[str] = []
    candidates = [root / THROTTLED_SYSFS]
    candidates += sorted((root / "sys/devices/platform").glob("*/*firmware/get_throttled"))
    for path in dict.fromkeys(candidates):
        text = _read_text(path)
        if text is None:
            continue
        source = "/" + str(path.relative_to(root))
        value = parse_throttled(text)
        if value is not None:
            return ThrottleState(value, source)
        unreadable.append(f"{source} = {text.strip()!r}")

    output = _run_text(run, ("vcgencmd", "get_throttled"))
    if output is not None:
        value = parse_throttled(output)
        if value is not None:
            return ThrottleState(value, "vcgencmd get_throttled")
        unreadable.append(f"vcgencmd get_throttled printed {output.strip()!r}")

    hwmon = _find_hwmon(root, "rpi_volt")
    if hwmon is not None:
        alarm = _read_int(hwmon / "in0_lcrit_alarm")
        source = f"/{(hwmon / 'in0_lcrit_alarm').relative_to(root)}"
        if alarm is not None:
            return ThrottleState(1 if alarm else 0, source)
        unreadable.append(f"{source} unreadable")

    if unreadable:
        return ThrottleState(None, "; ".join(unreadable))
    return None


# ------------------------------------------------------------------ thermals


@dataclass(frozen=True)
class ThermalState:
    """Temperature, per-CPU frequencies (kHz) and governors at one moment."""

    temperature_c: float | None
    cpu_freq_khz: tuple[int, ...]
    max_freq_khz: tuple[int, ...]
    governors: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "temperature_c": self.temperature_c,
            "cpu_freq_khz": list(self.cpu_freq_khz),
            "max_freq_khz": list(self.max_freq_khz),
            "governors": list(self.governors),
        }


def read_thermal(root: Path = Path("/")) -> ThermalState:
    """Read thermal_zone0 and each CPU's cpufreq files; missing values are left out."""
    root = Path(root)
    milli = _read_int(root / "sys/class/thermal/thermal_zone0/temp")
    cur: list[int] = []
    top: list[int] = []
    governors: list[str] = []
    for cpu_dir in _cpu_dirs(root):
        freq_dir = cpu_dir / "cpufreq"
        if (value := _read_int(freq_dir / "scaling_cur_freq")) is not None:
            cur.append(value)
        if (value := _read_int(freq_dir / "cpuinfo_max_freq")) is not None:
            top.append(value)
        if governor := (_read_text(freq_dir / "scaling_governor") or "").strip():
            governors.append(governor)
    return ThermalState(
        temperature_c=None if milli is None else milli / 1000.0,
        cpu_freq_khz=tuple(cur),
        max_freq_khz=tuple(top),
        governors=tuple(governors),
    )


def cpu_drop(before: ThermalState, after: ThermalState) -> float | None:
    """Fractional drop of mean current CPU frequency (0.25 = 25 % slower; negative = faster).

    None when either side has no frequencies, so callers can flag throttled runs.
    """
    if not before.cpu_freq_khz or not after.cpu_freq_khz:
        return None
    mean_before = sum(before.cpu_freq_khz) / len(before.cpu_freq_khz)
    mean_after = sum(after.cpu_freq_khz) / len(after.cpu_freq_khz)
    if mean_before <= 0:
        return None
    return (mean_before - mean_after) / mean_before


# ---------------------------------------------------------------- GPU, memory


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
    output = _run_text(run, NVIDIA_SMI_QUERY)
    if output is None:
        return ()
    gpus = []
    for line in output.splitlines():
        # rsplit: the name is the only field that could contain a comma.
        fields = [f.strip() for f in line.rsplit(",", 2)]
        if len(fields) != 3 or not fields[0]:
            continue
        total = _to_int(fields[1])
        if total is None:
            continue  # "[N/A]" or similar: not a usable CUDA device for us
        gpus.append(GpuInfo(name=fields[0], total_mib=total, driver=fields[2]))
    return tuple(gpus)


def read_memory_mb(root: Path = Path("/")) -> int | None:
    """MemTotal from /proc/meminfo in MB (MiB), or None."""
    text = _read_text(Path(root) / "proc/meminfo") or ""
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


# ----------------------------------------------------------------------- host


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
        cap = f"will be capped to {LOWVRAM_MIB} MiB to emulate a 6 GB card"
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

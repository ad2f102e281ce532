"""The Raspberry Pi board and its firmware's throttle flags."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sdperf.host.cpu import first_field, parse_cpuinfo
from sdperf.host.files import Run, read_int, read_text, run_text, to_int

PI_THROTTLE_SOFT_C = 80.0
"""Pi firmware starts throttling the Arm cores here (hard limit at 85 C)."""

THROTTLED_SYSFS = "sys/devices/platform/soc/soc:firmware/get_throttled"

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
    text = read_text(Path(root) / "proc/device-tree/compatible") or ""
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
    blocks, _ = parse_cpuinfo(read_text(root / "proc/cpuinfo") or "")
    revision = to_int(first_field(blocks, "Revision"), 16)
    board, board_type, ram_mb = decode_revision(revision) if revision is not None else (None,) * 3

    if compatible:
        if not any(s.startswith("raspberrypi,") for s in compatible):
            return None  # another device-tree board: its cpuinfo Revision means nothing
        # The SoC names the board class (Pi 400/CM4 are Pi 4s, Pi 500/CM5 are Pi 5s).
        board = next((_PI_SOCS[s] for s in compatible if s in _PI_SOCS), board)
    elif revision is None or not revision & _REV_NEW_STYLE:
        return None

    model_text = read_text(root / "proc/device-tree/model") or first_field(blocks, "Model") or ""
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
        if (read_text(name_file) or "").strip() == name:
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
        text = read_text(path)
        if text is None:
            continue
        source = "/" + str(path.relative_to(root))
        value = parse_throttled(text)
        if value is not None:
            return ThrottleState(value, source)
        unreadable.append(f"{source} = {text.strip()!r}")

    output = run_text(run, ("vcgencmd", "get_throttled"))
    if output is not None:
        value = parse_throttled(output)
        if value is not None:
            return ThrottleState(value, "vcgencmd get_throttled")
        unreadable.append(f"vcgencmd get_throttled printed {output.strip()!r}")

    hwmon = _find_hwmon(root, "rpi_volt")
    if hwmon is not None:
        alarm = read_int(hwmon / "in0_lcrit_alarm")
        source = f"/{(hwmon / 'in0_lcrit_alarm').relative_to(root)}"
        if alarm is not None:
            return ThrottleState(1 if alarm else 0, source)
        unreadable.append(f"{source} unreadable")

    if unreadable:
        return ThrottleState(None, "; ".join(unreadable))
    return None

"""Temperature, CPU frequencies and governors: read before and after each case."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdperf.host.files import cpu_dirs, read_int, read_text


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
    milli = read_int(root / "sys/class/thermal/thermal_zone0/temp")
    cur: list[int] = []
    top: list[int] = []
    governors: list[str] = []
    for cpu_dir in cpu_dirs(root):
        freq_dir = cpu_dir / "cpufreq"
        if (value := read_int(freq_dir / "scaling_cur_freq")) is not None:
            cur.append(value)
        if (value := read_int(freq_dir / "cpuinfo_max_freq")) is not None:
            top.append(value)
        if governor := (read_text(freq_dir / "scaling_governor") or "").strip():
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

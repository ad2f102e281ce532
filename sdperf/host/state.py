"""Host state around each case, and whether it leaves the result valid.

A Pi that reported under-voltage or throttling, or a CPU whose clock sagged past
the profile's margin, measured something else than the workload: such a result
is marked invalid and never saved, instead of showing up as a regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdperf.config.profiles import Limits
from sdperf.host.pi import ThrottleState, read_throttle
from sdperf.host.sensors import ThermalState, cpu_drop, read_thermal

# get_throttled bits 16-19: under-voltage, frequency capped, throttled, soft
# temperature limit "has occurred since boot".
_SINCE_BOOT_MASK = 0xF0000
_NOW_PROBLEMS = (
    ("under_voltage_now", "under-voltage"),
    ("freq_capped_now", "ARM frequency capped"),
    ("throttled_now", "throttled"),
    ("soft_temp_limit_now", "soft temperature limit active"),
)


@dataclass(frozen=True)
class HostState:
    throttle: ThrottleState | None
    thermal: ThermalState

    def to_json(self) -> dict[str, Any]:
        return {
            "throttle": None if self.throttle is None else self.throttle.to_json(),
            "thermal": self.thermal.to_json(),
        }


def read_host_state(root: Path) -> HostState:
    return HostState(throttle=read_throttle(root), thermal=read_thermal(root))


def _mean_mhz(thermal: ThermalState) -> float:
    return sum(thermal.cpu_freq_khz) / len(thermal.cpu_freq_khz) / 1000


def invalid_reasons(before: HostState, after: HostState, limits: Limits) -> list[str]:
    """Why a case measured between `before` and `after` cannot be trusted (empty: valid)."""
    reasons = []
    for moment, state in (("at the start", before), ("at the end", after)):
        throttle = state.throttle
        if throttle is None or throttle.raw is None:
            continue
        active = [label for attribute, label in _NOW_PROBLEMS if getattr(throttle, attribute)]
        if active:
            reasons.append(f"Raspberry Pi {', '.join(active)} {moment} of the case ({throttle.source} = {throttle.raw:#x})")
    if before.throttle and after.throttle and before.throttle.raw is not None and after.throttle.raw is not None:
        new_bits = after.throttle.raw & ~before.throttle.raw & _SINCE_BOOT_MASK
        if new_bits:
            reasons.append(
                f"Raspberry Pi under-voltage or throttling occurred during the case "
                f"({after.throttle.source} went from {before.throttle.raw:#x} to {after.throttle.raw:#x})"
            )
    if limits.cpu_freq_drop is not None:
        drop = cpu_drop(before.thermal, after.thermal)
        if drop is not None and drop > limits.cpu_freq_drop:
            reasons.append(
                f"mean CPU frequency fell {drop:.0%} during the case ({_mean_mhz(before.thermal):.0f} to "
                f"{_mean_mhz(after.thermal):.0f} MHz; the profile allows {limits.cpu_freq_drop:.0%})"
            )
    return reasons

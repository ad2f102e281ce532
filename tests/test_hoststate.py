"""When a measured case stays valid, from host states before and after it."""

from __future__ import annotations

from sdperf.config.profiles import Limits
from sdperf.host.pi import ThrottleState
from sdperf.host.sensors import ThermalState
from sdperf.host.state import HostState, invalid_reasons

PI = Limits(cpu_freq_drop=0.1)


def state(raw: int | None = 0, mhz: int = 2400) -> HostState:
    throttle = None if raw is None else ThrottleState(raw, "get_throttled")
    return HostState(throttle, ThermalState(60.0, (mhz * 1000,) * 4, (2400000,) * 4, ("performance",)))


def test_a_quiet_pi_is_valid() -> None:
    assert invalid_reasons(state(), state(), PI) == []


def test_since_boot_flags_raised_during_the_case_invalidate_it() -> None:
    [reason] = invalid_reasons(state(0x0), state(0x10000), PI)
    assert "occurred during the case" in reason and "0x0 to 0x10000" in reason


def test_since_boot_flags_from_before_the_case_do_not() -> None:
    assert invalid_reasons(state(0x50000), state(0x50000), PI) == []


def test_under_voltage_now_at_the_start_invalidates() -> None:
    assert any("under-voltage at the start" in r for r in invalid_reasons(state(0x1), state(0x0), PI))


def test_frequency_drop_counts_only_past_the_profile_margin() -> None:
    assert invalid_reasons(state(mhz=2400), state(mhz=2200), PI) == []  # 8 %
    assert invalid_reasons(state(mhz=2400), state(mhz=2000), PI) != []  # 17 %
    assert invalid_reasons(state(None, 2400), state(None, 1000), Limits()) == []  # no margin configured

"""Measures the change-point detector (sdperf.judging.changes) on seeded synthetic nightly series.

A series: `nights` nightly medians around 1 s, each night's noise drawn from a Student t with
3 degrees of freedom scaled to a standard deviation of `noise` (heavy tails), plus, with
probability `OUTLIER_RATE` a night, a wild slow night (+30% to +100%: a busy runner), and from
night `step_at` on a step of `step` (+10% = 0.10). Three measures:

  delay     a step of 10% at a noise level; the series is cut `within` nights after the step
            (the step's night and `within` more) and the detector must report a change whose
            first night is within 1 of the true one: the fraction of series where it does.
  false     unchanged series of 20 to 150 nights at noise 1% to 15%: changes found per 100 nights.
  nightly   unchanged series judged night by night as the nightly job does: nights per 100
            on which the gate would fail (the newest segment a confirmed slowdown).
  located   steps of 5% to 30% at noise 1% to 5%, the whole series: of the changes found, how
            many name the true first night within 1 (and how many steps were found at all).

Usage: python tools/changepoint_trials.py [SERIES_PER_CELL] [SEED]
"""

from __future__ import annotations

import math
import random
import sys

OUTLIER_RATE = 0.03


def synthetic_series(rng: random.Random, nights: int, noise: float, step: float = 0.0,
                     step_at: int | None = None) -> list[float]:
    """Nightly medians (seconds), heavy-tailed noise and wild nights; see the module text."""
    scale = noise / math.sqrt(3.0)  # a t(3) has variance 3
    values = []
    for night in range(nights):
        normal = rng.gauss(0, 1)
        chi = sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3
        log_value = scale * normal / math.sqrt(chi)
        if rng.random() < OUTLIER_RATE:
            log_value += math.log1p(rng.uniform(0.3, 1.0))
        if step_at is not None and night >= step_at:
            log_value += math.log1p(step)
        values.append(math.exp(log_value))
    return values


def delay_trial(rng: random.Random, noise: float, within: int, series: int) -> tuple[float, float, float]:
    """Fractions of series where a change is found with its first night within 1 of the true
    one, within 3, and where the nightly gate fails."""
    from sdperf.judging.changes import find_changes

    exact = near = gated = 0
    for _ in range(series):
        before = rng.randint(10, 60)
        values = synthetic_series(rng, before + within + 1, noise, 0.10, before)
        analysis = find_changes(values, 0.05)
        offsets = [abs(change.index - before) for change in analysis.changes]
        exact += any(offset <= 1 for offset in offsets)
        near += any(offset <= 3 for offset in offsets)
        gated += analysis.gate() == "slowdown"
    return exact / series, near / series, gated / series


def nightly_alarms(rng: random.Random, series: int, nights: int = 60) -> tuple[float, int]:
    """Unchanged series analysed night by night, as the nightly job does: nights on which the
    gate would fail (the newest segment a confirmed slowdown), per 100 nights judged."""
    from sdperf.judging.changes import find_changes

    alarms = judged = 0
    for _ in range(series):
        values = synthetic_series(rng, nights, rng.uniform(0.01, 0.15))
        for end in range(10, nights + 1):
            judged += 1
            alarms += find_changes(values[:end], 0.05).newest_is_slowdown
    return 100 * alarms / judged, judged


def false_rate(rng: random.Random, series: int) -> tuple[float, int]:
    from sdperf.judging.changes import find_changes

    changes = nights = 0
    for _ in range(series):
        length, noise = rng.randint(20, 150), rng.uniform(0.01, 0.15)
        changes += len(find_changes(synthetic_series(rng, length, noise), 0.05).changes)
        nights += length
    return 100 * changes / nights, nights


def located(rng: random.Random, series: int) -> tuple[float, float]:
    from sdperf.judging.changes import find_changes

    found = right = 0
    for _ in range(series):
        length = rng.randint(20, 150)
        at = rng.randint(5, length - 5)
        values = synthetic_series(rng, length, rng.uniform(0.01, 0.05), rng.uniform(0.05, 0.30), at)
        changes = find_changes(values, 0.05).changes
        found += bool(changes)
        right += any(abs(change.index - at) <= 1 for change in changes)
    return found / series, right / series


def main() -> None:
    series = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 2026
    rng = random.Random(seed)
    for noise, within, goal in ((0.02, 3, 0.95), (0.02, 5, None), (0.05, 5, 0.90), (0.05, 8, None)):
        exact, near, gated = delay_trial(rng, noise, within, series)
        print(f"10% step at {noise:.0%} noise, {within} nights after it: found with its first night +-1 in {exact:.1%}, "
              f"+-3 in {near:.1%}; the gate fails in {gated:.1%} of {series} series"
              + (f" (goal: found in >= {goal:.0%})" if goal else ""))
    rate, nights = false_rate(rng, series)
    print(f"unchanged series: {rate:.2f} false changes per 100 nights ({nights} nights; goal <= 1)")
    rate, judged = nightly_alarms(rng, max(series // 10, 5))
    print(f"unchanged series judged night by night: the gate fails on {rate:.2f} nights per 100 ({judged} nights)")
    any_found, right = located(rng, series)
    print(f"steps of 5-30% at 1-5% noise: a change found in {any_found:.1%}, the true first night +-1 in "
          f"{right:.1%} of {series} series")


if __name__ == "__main__":
    main()

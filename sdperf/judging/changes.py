"""Where a nightly series shifted: change points, each confirmed by a test and a minimum size.

A night's figure (the median latency of its run) is the unit: per-round or per-step samples
never count as separate nights. The method, on the logarithm of the nightly medians scaled by
the series' own robust noise:

1. Candidates: PELT (ruptures) with the L1 cost, the exact segmentation that minimises the sum
   of absolute deviations from each segment's median plus a penalty per change. L1 rather than
   the squared cost so that one wild night (a busy runner) moves a segment's median, not its
   cost, and makes no change point of its own.
2. Confirmation, as Otava does after E-divisive: every change must pass a Mann-Whitney test
   between its neighbouring segments (p below `ALPHA`) and move the median by at least the
   profile's threshold; the weakest failing change is merged away and its neighbours tested
   again, until every change left passes.
3. The nightly gate: the newest segment a slowdown at p < `GATE_ALPHA` and `GATE_Z` standard
   errors; a newest segment that is slower but less certain is "suspected".
4. "Suspected": the newest night alone stands out from the newest segment (beyond `SUSPECT_Z`
   robust standard deviations and the threshold). One night is not a segment; it is named, not gated.

The constants were chosen on seeded synthetic series (tools/changepoint_trials.py; figures in
the README).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PENALTY = 3.0  # per change, in units of the series' robust noise (L1 cost)
MIN_SEGMENT = 3  # nights: fewer is never a segment (the newest night alone may be "suspected")
ALPHA = 0.03  # Mann-Whitney between neighbouring segments
# The nightly gate fails only on a newest-segment slowdown this certain: the rank test below
# GATE_ALPHA and the shift GATE_Z standard errors of the difference at the series' noise (what
# a short run of unlucky nights on a noisy runner does not reach). One only confirmed at ALPHA is
# "suspected" (a warning): a failed nightly must rarely be noise.
GATE_ALPHA = 0.001
GATE_Z = 3.5
SUSPECT_Z = 4.0
NOISE_FLOOR = 0.002  # 0.2%: below this a series' spread is timer resolution, not noise
_MAD_TO_SD = 1.4826


def robust_noise(logs: Sequence[float]) -> float:
    """Standard deviation of one night, from successive differences: their median absolute
    value, scaled to a normal's standard deviation and divided by sqrt(2). A step adds one
    large difference and a wild night two, which the median ignores."""
    differences = [abs(b - a) for a, b in zip(logs, logs[1:])]
    if not differences:
        return NOISE_FLOOR
    return max(_MAD_TO_SD * statistics.median(differences) / math.sqrt(2), NOISE_FLOOR)


@dataclass(frozen=True)
class Change:
    index: int  # first night of the new segment
    ratio: float  # new segment's median / previous segment's median
    ci_low: float
    ci_high: float
    p_value: float
    before_nights: int
    after_nights: int
    z: float  # log ratio over its standard error at the series' noise

    @property
    def direction(self) -> str:
        return "slower" if self.ratio > 1 else "faster"

    def to_json(self) -> dict:
        return {**asdict(self), "direction": self.direction}


@dataclass(frozen=True)
class Analysis:
    changes: list[Change]
    noise: float  # robust noise of one night (log scale, about a relative standard deviation)
    suspected: dict | None  # the newest night, when it alone stands out
    nights: int

    @property
    def newest_is_slowdown(self) -> bool:
        """The newest segment is slower than the one before, beyond the gate's significance."""
        newest = self.changes[-1] if self.changes else None
        return (newest is not None and newest.direction == "slower" and newest.p_value < GATE_ALPHA
                and newest.z >= GATE_Z)

    def gate(self) -> str:
        """"slowdown" (fail the nightly), "suspected" (warn) or "ok"."""
        if self.newest_is_slowdown:
            return "slowdown"
        newest = self.changes[-1] if self.changes else None
        if (newest is not None and newest.direction == "slower") or (self.suspected or {}).get("direction") == "slower":
            return "suspected"
        return "ok"


def _segments(bounds: list[int], n: int) -> list[tuple[int, int]]:
    edges = [0, *bounds, n]
    return list(zip(edges, edges[1:]))


def _test(left: Sequence[float], right: Sequence[float]) -> float:
    from scipy.stats import mannwhitneyu

    p_value = float(mannwhitneyu(right, left, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p_value) else p_value


def _ratio_interval(left: Sequence[float], right: Sequence[float], seed: int) -> tuple[float, float]:
    """95% bootstrap interval of the ratio of medians (nights resampled within each segment)."""
    rng = random.Random(seed)
    draws = sorted(
        statistics.median(rng.choices(right, k=len(right))) - statistics.median(rng.choices(left, k=len(left)))
        for _ in range(1000)
    )
    return math.exp(draws[25]), math.exp(draws[974])


def find_changes(values: Sequence[float], threshold: float, noise: float | None = None) -> Analysis:
    """Confirmed change points of a series of positive nightly figures (oldest first).
    `noise` (relative, e.g. 0.03) is the series' learned noise; without it the series' own
    robust noise is used."""
    import numpy
    import ruptures

    if any(not value > 0 for value in values):
        raise ValueError("nightly figures must be positive (durations or sizes)")
    logs = [math.log(value) for value in values]
    n = len(logs)
    sigma = max(noise, NOISE_FLOOR) if noise else robust_noise(logs)
    bounds: list[int] = []
    if n >= 2 * MIN_SEGMENT:
        centre = statistics.median(logs)
        scaled = numpy.array([(value - centre) / sigma for value in logs]).reshape(-1, 1)
        found = ruptures.Pelt(model="l1", min_size=MIN_SEGMENT, jump=1).fit(scaled).predict(pen=PENALTY)
        bounds = [int(edge) for edge in found[:-1]]
    bounds, tests = _confirm(logs, bounds, threshold)
    changes = []
    for position, bound in enumerate(bounds):
        (left_start, _), (_, right_end) = _segments(bounds, n)[position], _segments(bounds, n)[position + 1]
        left, right = logs[left_start:bound], logs[bound:right_end]
        low, high = _ratio_interval(left, right, seed=bound)
        shift = statistics.median(right) - statistics.median(left)
        z = shift / (sigma * math.sqrt(1 / len(left) + 1 / len(right)))
        changes.append(Change(bound, math.exp(shift), low, high, tests[bound], len(left), len(right), z))
    return Analysis(changes, sigma, _suspect(logs, bounds, sigma, threshold), n)


def _confirm(logs: list[float], bounds: list[int], threshold: float) -> tuple[list[int], dict[int, float]]:
    """Merge away, weakest first, every change whose neighbouring segments fail the test or
    differ by less than the threshold."""
    minimum = math.log1p(threshold)
    while True:
        tests: dict[int, float] = {}
        failing: list[tuple[float, int]] = []
        for position, (start, end) in enumerate(_segments(bounds, len(logs))[:-1]):
            bound = end
            next_end = _segments(bounds, len(logs))[position + 1][1]
            left, right = logs[start:bound], logs[bound:next_end]
            p_value = _test(left, right)
            tests[bound] = p_value
            size = abs(statistics.median(right) - statistics.median(left))
            if p_value >= ALPHA or size < minimum:
                # Weakest first: the highest p-value, then the smallest size.
                failing.append((p_value - size, bound))
        if not failing:
            return bounds, tests
        bounds = [bound for bound in bounds if bound != max(failing)[1]]


def _suspect(logs: list[float], bounds: list[int], sigma: float, threshold: float) -> dict | None:
    """The newest night, when it alone stands out from the segment it closes."""
    start = bounds[-1] if bounds else 0
    segment = logs[start:-1]
    if len(segment) < MIN_SEGMENT:
        return None
    level = statistics.median(segment)
    shift = logs[-1] - level
    z = shift / sigma
    if abs(z) >= SUSPECT_Z and abs(shift) >= math.log1p(threshold):
        return {"index": len(logs) - 1, "ratio": math.exp(shift), "z": z,
                "direction": "slower" if shift > 0 else "faster"}
    return None

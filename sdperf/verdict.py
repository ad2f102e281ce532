"""Verdicts from raw samples: faster, slower, same or inconclusive, with the ratio and its interval.

A bare threshold on one mean calls noise a regression on a noisy machine. Here a
change must be both significant (two-sided Mann-Whitney U) and beyond the
profile's threshold (a bootstrap interval of the ratio of medians lies wholly
past it); "same" needs the whole interval inside the threshold band; anything
else is inconclusive, with an estimate of how many rounds would decide.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

OUTCOMES = ("faster", "slower", "same", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    outcome: str
    ratio: float  # median(candidate) / median(baseline): above 1 is slower
    ci_low: float
    ci_high: float
    p_value: float
    threshold: float
    baseline_n: int
    candidate_n: int
    rounds_to_decide: int | None = None  # per side, for "inconclusive"

    def describe(self) -> str:
        text = (
            f"{self.outcome}: {self.ratio - 1:+.1%} (95% CI {self.ci_low - 1:+.1%} to {self.ci_high - 1:+.1%}, "
            f"p={self.p_value:.3g}, threshold {self.threshold:.0%}, n={self.baseline_n}/{self.candidate_n})"
        )
        if self.rounds_to_decide:
            text += f"; about {self.rounds_to_decide} rounds per side would decide"
        return text


def _bootstrap_ratio(baseline: Sequence[float], candidate: Sequence[float], confidence: float,
                     resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of median(candidate)/median(baseline); seeded, so reruns agree."""
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(candidate, k=len(candidate)))
        / statistics.median(rng.choices(baseline, k=len(baseline)))
        for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    return ratios[int(tail * (resamples - 1))], ratios[int(math.ceil((1 - tail) * (resamples - 1)))]


def _rounds_to_decide(n: int, ratio: float, low: float, high: float, threshold: float) -> int | None:
    """Rounds per side at which the interval, shrinking as 1/sqrt(n), would clear the boundary
    that decides: past 1+threshold (slower), below 1-threshold (faster), or inside both (same)."""
    upper, lower = 1 + threshold, 1 - threshold
    if ratio > upper:
        distance = ratio - upper
    elif ratio < lower:
        distance = lower - ratio
    else:
        distance = min(ratio - lower, upper - ratio)
    half_width = (high - low) / 2
    if half_width <= 0 or distance <= 0:
        return None
    return max(math.ceil(n * (half_width / distance) ** 2), n + 1)


def compare_samples(
    baseline: Sequence[float],
    candidate: Sequence[float],
    threshold: float = 0.05,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> Verdict:
    """Verdict on `candidate` against `baseline` (latencies or memory figures; lower is better)."""
    from scipy.stats import mannwhitneyu

    if len(baseline) < 2 or len(candidate) < 2:
        raise ValueError(
            f"a verdict needs at least 2 samples per side, got {len(baseline)} baseline and {len(candidate)} candidate; "
            "run more rounds (--sdperf-rounds)"
        )
    if not 0 < threshold < 1:
        raise ValueError(f"threshold {threshold!r} must be a fraction between 0 and 1, e.g. 0.05")
    if min(baseline) <= 0 or min(candidate) <= 0:
        raise ValueError("samples must be positive (durations or sizes)")
    ratio = statistics.median(candidate) / statistics.median(baseline)
    low, high = _bootstrap_ratio(baseline, candidate, 1 - alpha, resamples, seed)
    p_value = float(mannwhitneyu(candidate, baseline, alternative="two-sided").pvalue)
    significant = p_value < alpha
    if significant and low > 1 + threshold:
        outcome = "slower"
    elif significant and high < 1 - threshold:
        outcome = "faster"
    elif 1 - threshold <= low and high <= 1 + threshold:
        outcome = "same"
    else:
        outcome = "inconclusive"
    rounds = (
        _rounds_to_decide(min(len(baseline), len(candidate)), ratio, low, high, threshold)
        if outcome == "inconclusive" else None
    )
    return Verdict(outcome, ratio, low, high, p_value, threshold, len(baseline), len(candidate), rounds)

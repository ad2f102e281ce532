"""Verdicts from raw samples: faster, slower, same or inconclusive, with the ratio and its interval.

A bare threshold on one mean calls noise a regression on a noisy machine. Here a
change is "slower" (or "faster") only when it is significant (the test's p-value
is below alpha and the 95% interval of the ratio excludes 1) and its estimate lies
beyond the profile's threshold; "same" needs the whole interval inside the
threshold band; anything else is inconclusive, with an estimate of how many
rounds would decide.

Two designs, two functions:
- `compare_samples`: two independent runs (a stored baseline and this run).
  Mann-Whitney U and a bootstrap interval of the ratio of medians, widened by the
  profile's session-to-session noise: runs made minutes or days apart differ by
  more than the rounds inside one run show, and only the profile can say by how much.
- `compare_paired`: rounds interleaved in time (A B B A ...), so machine drift
  cancels pair by pair. Wilcoxon signed-rank and a bootstrap interval of the
  Hodges-Lehmann estimate of the per-pair ratio.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

OUTCOMES = ("faster", "slower", "same", "inconclusive")
_Z95 = statistics.NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Verdict:
    outcome: str
    ratio: float  # candidate / baseline: above 1 is slower (or bigger)
    ci_low: float
    ci_high: float
    p_value: float
    threshold: float
    baseline_n: int
    candidate_n: int
    design: str = "independent"  # independent | paired
    samples: str = "rounds"  # rounds | steps | pairs
    session_noise: float = 0.0
    rounds_to_decide: int | None = None  # per side, for "inconclusive"; None: more rounds will not decide
    # Worker processes behind each side: the interval resamples them, then the samples within each.
    baseline_workers: int | None = None
    candidate_workers: int | None = None

    def describe(self) -> str:
        n = (f"{self.baseline_n} {self.samples}" if self.design == "paired"
             else f"n={self.baseline_n}/{self.candidate_n} {self.samples}")
        text = (
            f"{self.outcome}: {self.ratio - 1:+.1%} (95% CI {self.ci_low - 1:+.1%} to {self.ci_high - 1:+.1%}, "
            f"p={self.p_value:.3g}, threshold {self.threshold:.0%}, {n}"
        )
        if self.session_noise:
            text += f", session noise {self.session_noise:.0%}"
        if self.baseline_workers and (self.baseline_workers > 1 or (self.candidate_workers or 0) > 1):
            text += (f", {self.baseline_workers} workers" if self.design == "paired"
                     else f", {self.baseline_workers}/{self.candidate_workers} workers")
        text += ")"
        if self.outcome == "inconclusive":
            if self.rounds_to_decide:
                per_side = "" if self.design == "paired" else " per side"
                text += f"; about {self.rounds_to_decide} {self.samples}{per_side} would decide"
            elif self.session_noise:
                text += (
                    "; more rounds will not decide: the difference is within the session-to-session noise; "
                    "compare interleaved instead (--sdperf-interleave)"
                )
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(baseline: Sequence[float], candidate: Sequence[float], threshold: float, alpha: float) -> None:
    if len(baseline) < 2 or len(candidate) < 2:
        raise ValueError(
            f"a verdict needs at least 2 samples per side, got {len(baseline)} baseline and {len(candidate)} candidate; "
            "run more rounds (--sdperf-rounds)"
        )
    if not 0 < threshold < 1:
        raise ValueError(f"threshold {threshold!r} must be a fraction between 0 and 1, e.g. 0.05")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha!r} must be a probability between 0 and 1, e.g. 0.05")
    if min(baseline) <= 0 or min(candidate) <= 0:
        raise ValueError("samples must be positive (durations or sizes)")


def _percentiles(values: list[float], confidence: float) -> tuple[float, float]:
    values.sort()
    tail = (1 - confidence) / 2
    last = len(values) - 1
    return values[int(tail * last)], values[int(math.ceil((1 - tail) * last))]


def _decide(log_ratio: float, log_low: float, log_high: float, p_value: float, alpha: float,
            threshold: float) -> str:
    upper, lower = math.log1p(threshold), math.log1p(-threshold)
    significant = p_value < alpha and (log_low > 0 or log_high < 0)
    if significant and log_ratio > upper:
        return "slower"
    if significant and log_ratio < lower:
        return "faster"
    if lower <= log_low and log_high <= upper:
        return "same"
    return "inconclusive"


def _rounds_to_decide(n: int, log_ratio: float, sampling_half_width: float, noise_half_width: float,
                      threshold: float) -> int | None:
    """Samples per side at which the interval, its sampling part shrinking as 1/sqrt(n), would
    clear the boundary that decides: 1 (for slower or faster) or the threshold band (for same).
    None when the part that does not shrink (session noise) already spans that distance."""
    upper, lower = math.log1p(threshold), math.log1p(-threshold)
    if log_ratio > upper or log_ratio < lower:
        distance = abs(log_ratio)
    else:
        distance = min(log_ratio - lower, upper - log_ratio)
    if sampling_half_width <= 0 or distance <= noise_half_width:
        return None
    target = math.sqrt(distance**2 - noise_half_width**2)
    return max(math.ceil(n * (sampling_half_width / target) ** 2), n + 1)


class _Clusters:
    """Samples grouped by the worker process that took them. A bootstrap draw takes workers
    with replacement, then samples within each drawn worker (a two-level bootstrap): samples
    of one worker share its placement, clock and heat, so they are not independent. Without
    worker tags every sample is its own group, which is the plain bootstrap."""

    def __init__(self, values: Sequence[float], groups: Sequence[object] | None) -> None:
        if groups is not None and len(groups) != len(values):
            raise ValueError(f"{len(groups)} worker tags for {len(values)} samples; give one per sample")
        found: dict[object, list[float]] = {}
        for index, value in enumerate(values):
            found.setdefault(index if groups is None or groups[index] is None else ("w", groups[index]), []).append(value)
        self.members = list(found.values())
        self.workers = None if groups is None else len(self.members)

    def draw(self, rng: random.Random) -> list[float]:
        drawn: list[float] = []
        for members in rng.choices(self.members, k=len(self.members)):
            drawn.extend(rng.choices(members, k=len(members)))
        return drawn


def compare_samples(
    baseline: Sequence[float],
    candidate: Sequence[float],
    threshold: float = 0.05,
    alpha: float = 0.05,
    session_noise: float = 0.0,
    samples: str = "rounds",
    resamples: int = 2000,
    seed: int = 0,
    baseline_workers: Sequence[object] | None = None,
    candidate_workers: Sequence[object] | None = None,
) -> Verdict:
    """Verdict on `candidate` against `baseline` from two independent runs (lower is better).

    `session_noise` is the relative standard deviation of a run's median between
    sessions on this hardware; each run carries it, so the interval widens by
    1.96 * sqrt(2) * session_noise (in log space) however many rounds were run.
    `*_workers` tag each sample with the worker that took it: the interval resamples workers.
    """
    from scipy.stats import mannwhitneyu

    _check(baseline, candidate, threshold, alpha)
    if session_noise < 0:
        raise ValueError(f"session_noise {session_noise!r} must be a fraction >= 0, e.g. 0.03")
    log_ratio = math.log(statistics.median(candidate) / statistics.median(baseline))
    rng = random.Random(seed)
    base_clusters, cand_clusters = _Clusters(baseline, baseline_workers), _Clusters(candidate, candidate_workers)
    boot = [
        math.log(statistics.median(cand_clusters.draw(rng)) / statistics.median(base_clusters.draw(rng)))
        for _ in range(resamples)
    ]
    boot_low, boot_high = _percentiles(boot, 1 - alpha)
    noise_half = _Z95 * math.sqrt(2) * session_noise
    if noise_half:
        # Sampling and session noise are independent: their half-widths add in quadrature.
        low = log_ratio - math.hypot(log_ratio - boot_low, noise_half)
        high = log_ratio + math.hypot(boot_high - log_ratio, noise_half)
    else:
        low, high = boot_low, boot_high
    p_value = float(mannwhitneyu(candidate, baseline, alternative="two-sided").pvalue)
    if math.isnan(p_value):  # every sample equal on both sides
        p_value = 1.0
    if noise_half:
        # Two runs are two samples of the run-to-run spread however many rounds or steps each
        # took: the p-value is the larger of the rank test's and the one the widened interval
        # implies, so one run's many samples never outweigh the spread between runs.
        standard_error = (high - low) / (2 * _Z95)
        p_value = max(p_value, 2 * (1 - statistics.NormalDist().cdf(abs(log_ratio) / standard_error)))
    outcome = _decide(log_ratio, low, high, p_value, alpha, threshold)
    rounds = None
    if outcome == "inconclusive":
        n = min(len(baseline), len(candidate))
        rounds = _rounds_to_decide(n, log_ratio, (boot_high - boot_low) / 2, noise_half, threshold)
    return Verdict(outcome, math.exp(log_ratio), math.exp(low), math.exp(high), p_value, threshold,
                   len(baseline), len(candidate), "independent", samples, session_noise, rounds,
                   base_clusters.workers, cand_clusters.workers)


def _hodges_lehmann(values: Sequence[float]) -> float:
    """Median of all pairwise means: the estimate that goes with the signed-rank test, as
    robust as the median to a stalled round and nearly as efficient as the mean."""
    return statistics.median((values[i] + values[j]) / 2 for i in range(len(values)) for j in range(i, len(values)))


def compare_paired(
    baseline: Sequence[float],
    candidate: Sequence[float],
    threshold: float = 0.05,
    alpha: float = 0.05,
    samples: str = "pairs",
    resamples: int = 2000,
    seed: int = 0,
    workers: Sequence[object] | None = None,
) -> Verdict:
    """Verdict on `candidate` against `baseline` where sample i of each was taken side by side in time.
    `workers` tags each pair with the pair of workers that took it (both sides rotate together):
    the interval resamples those, then pairs within each."""
    from scipy.stats import wilcoxon

    _check(baseline, candidate, threshold, alpha)
    if len(baseline) != len(candidate):
        raise ValueError(
            f"paired samples need equal counts, got {len(baseline)} baseline and {len(candidate)} candidate"
        )
    logs = [math.log(c / b) for b, c in zip(baseline, candidate)]
    log_ratio = _hodges_lehmann(logs)
    rng = random.Random(seed)
    clusters = _Clusters(logs, workers)
    low, high = _percentiles([_hodges_lehmann(clusters.draw(rng)) for _ in range(resamples)], 1 - alpha)
    p_value = 1.0 if not any(logs) else float(wilcoxon(logs).pvalue)
    outcome = _decide(log_ratio, low, high, p_value, alpha, threshold)
    rounds = None
    if outcome == "inconclusive":
        rounds = _rounds_to_decide(len(logs), log_ratio, (high - low) / 2, 0.0, threshold)
    return Verdict(outcome, math.exp(log_ratio), math.exp(low), math.exp(high), p_value, threshold,
                   len(logs), len(logs), "paired", samples, 0.0, rounds, clusters.workers, clusters.workers)


def paired_overhead(suite: list[float], bare: list[float]) -> dict[str, float]:
    """Relative overhead of `suite` over `bare` (paired rounds), with a normal-approximation 95% CI."""
    pairs = min(len(suite), len(bare))
    differences = [s - b for s, b in zip(suite, bare)]
    bare_mean = statistics.fmean(bare[:pairs])
    mean_difference = statistics.fmean(differences)
    spread = statistics.stdev(differences) / pairs**0.5 if pairs > 1 else float("inf")
    z = statistics.NormalDist().inv_cdf(0.975)
    return {
        "pairs": pairs,
        "suite_mean_s": statistics.fmean(suite[:pairs]),
        "bare_mean_s": bare_mean,
        "overhead": mean_difference / bare_mean,
        "ci_low": (mean_difference - z * spread) / bare_mean,
        "ci_high": (mean_difference + z * spread) / bare_mean,
    }

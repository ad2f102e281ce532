"""Verdict logic on synthetic samples: no clocks, only made-up latencies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdperf.judging.statistics import OUTCOMES, compare_paired, compare_samples


def noisy(n: int, centre: float, spread: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [centre * (1 + rng.gauss(0, spread)) for _ in range(n)]


def test_a_clear_20_percent_shift_is_slower() -> None:
    verdict = compare_samples(noisy(10, 1.0, 0.03, 1), noisy(10, 1.2, 0.03, 2), threshold=0.05)
    assert verdict.outcome == "slower" and verdict.ci_low > 1
    assert 1.1 < verdict.ratio < 1.3 and verdict.describe().startswith("slower: +")


def test_a_clear_20_percent_speed_up_is_faster() -> None:
    assert compare_samples(noisy(10, 1.0, 0.03, 1), noisy(10, 0.8, 0.03, 2)).outcome == "faster"


def test_a_significant_shift_inside_the_threshold_is_not_slower() -> None:
    # 2% slower, measured very precisely: real, but inside a 5% threshold.
    verdict = compare_samples(noisy(40, 1.0, 0.002, 1), noisy(40, 1.02, 0.002, 2), threshold=0.05)
    assert verdict.p_value < 0.05
    assert verdict.outcome == "same"


def test_too_few_noisy_rounds_are_inconclusive_and_say_how_many_would_decide() -> None:
    verdict = compare_samples(noisy(3, 1.0, 0.15, 1), noisy(3, 1.1, 0.15, 2), threshold=0.05)
    assert verdict.outcome == "inconclusive"
    assert verdict.rounds_to_decide and verdict.rounds_to_decide > 3
    assert "rounds per side would decide" in verdict.describe()


def test_session_noise_keeps_a_precise_small_shift_between_runs_inconclusive() -> None:
    # 10% slower, with 0.5% noise inside each run: decisive within a session, but two
    # sessions on a host whose runs drift by 15% cannot tell it from drift, however many rounds.
    baseline, candidate = noisy(30, 1.0, 0.005, 1), noisy(30, 1.1, 0.005, 2)
    assert compare_samples(baseline, candidate).outcome == "slower"
    verdict = compare_samples(baseline, candidate, session_noise=0.15)
    assert verdict.outcome == "inconclusive" and verdict.rounds_to_decide is None
    assert verdict.ci_low < 1 < verdict.ci_high
    assert "more rounds will not decide" in verdict.describe() and "--sdperf-interleave" in verdict.describe()


def test_session_noise_does_not_hide_a_doubling() -> None:
    verdict = compare_samples(noisy(10, 1.0, 0.05, 1), noisy(10, 2.0, 0.05, 2), session_noise=0.15)
    assert verdict.outcome == "slower" and verdict.ci_low > 1


def drifting_pairs(n: int, shift: float, seed: int) -> tuple[list[float], list[float]]:
    """Pairs taken side by side on a machine whose speed wanders by +-20% between pairs."""
    rng = random.Random(seed)
    baseline, candidate = [], []
    for _ in range(n):
        speed = 1 + rng.uniform(-0.2, 0.2)
        baseline.append(speed * (1 + rng.gauss(0, 0.02)))
        candidate.append(speed * (1 + shift) * (1 + rng.gauss(0, 0.02)))
    return baseline, candidate


def test_pairs_cancel_drift_that_independent_samples_cannot() -> None:
    baseline, candidate = drifting_pairs(20, 0.10, 3)
    assert compare_paired(baseline, candidate).outcome == "slower"
    assert compare_samples(baseline, candidate).outcome == "inconclusive"


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_paired_identical_conditions_are_never_slower_or_faster(seed: int) -> None:
    baseline, candidate = drifting_pairs(20, 0.0, seed)
    assert compare_paired(baseline, candidate, resamples=500).outcome in ("same", "inconclusive")


def test_paired_shift_inside_the_threshold_is_not_a_failure() -> None:
    baseline, candidate = drifting_pairs(40, 0.02, 5)
    verdict = compare_paired(baseline, candidate)
    assert verdict.outcome == "same" and verdict.ratio == pytest.approx(1.02, abs=0.01)


def test_paired_samples_must_pair_up() -> None:
    with pytest.raises(ValueError, match="paired samples need equal counts, got 3 baseline and 2 candidate"):
        compare_paired([1.0, 1.0, 1.0], [1.0, 1.0])


def test_identical_constant_samples_are_the_same() -> None:
    # Peak memory often repeats to the byte: no spread at all must not break the test.
    assert compare_samples([5e8] * 6, [5e8] * 6).outcome == "same"
    assert compare_paired([5e8] * 6, [5e8] * 6).outcome == "same"


@settings(max_examples=40, deadline=None)
@given(samples=st.lists(st.floats(0.1, 10), min_size=2, max_size=30), seed=st.integers(0, 1000))
def test_the_same_samples_in_another_order_are_never_slower_or_faster(samples: list[float], seed: int) -> None:
    shuffled = samples[:]
    random.Random(seed).shuffle(shuffled)
    assert compare_samples(samples, shuffled).outcome in ("same", "inconclusive")


@pytest.mark.parametrize(("n", "spread"), [(5, 0.12), (10, 0.1), (20, 0.05)])
def test_false_alarms_on_identical_distributions_stay_within_alpha(n: int, spread: float) -> None:
    # A test at alpha 0.05 may call a real no-change a change now and then; the rate is what it owes.
    verdicts = [compare_samples(noisy(n, 0.6, spread, 2 * i), noisy(n, 0.6, spread, 2 * i + 1), resamples=500)
                for i in range(200)]
    false_alarms = sum(v.outcome in ("slower", "faster") for v in verdicts)
    assert false_alarms <= 10, f"{false_alarms} of 200 identical pairs were called a change"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100))
def test_the_verdict_does_not_depend_on_units(seed: int, scale: float) -> None:
    baseline, candidate = noisy(12, 1.0, 0.05, seed), noisy(12, 1.15, 0.05, seed + 1)
    plain = compare_samples(baseline, candidate)
    scaled = compare_samples([b * scale for b in baseline], [c * scale for c in candidate])
    assert plain.outcome == scaled.outcome and plain.outcome in OUTCOMES
    assert plain.ratio == pytest.approx(scaled.ratio)


@pytest.mark.parametrize(
    ("baseline", "candidate", "threshold", "message"),
    [
        ([1.0], [1.0, 1.1], 0.05, "at least 2 samples per side, got 1 baseline"),
        ([1.0, 1.1], [1.0, 1.1], 1.5, "threshold 1.5 must be a fraction between 0 and 1"),
        ([1.0, -1.0], [1.0, 1.1], 0.05, "samples must be positive"),
    ],
)
def test_bad_input_is_refused_with_the_fix(baseline, candidate, threshold, message) -> None:
    with pytest.raises(ValueError, match=message):
        compare_samples(baseline, candidate, threshold=threshold)


def test_rounds_of_rotated_workers_are_resampled_by_worker_not_pooled() -> None:
    # Six workers, each with its own lasting offset (+-4%, as measured between A/A workers) and
    # little noise inside: pooling the 30 rounds as independent claims a precision they lack.
    offsets = [-0.04, 0.03, -0.02, 0.04, -0.03, 0.02]
    candidate = [1.05 * (1 + offset) * (1 + 0.002 * k) for offset in offsets for k in range(5)]
    workers = [index for index in range(6) for _ in range(5)]
    baseline = noisy(30, 1.0, 0.002, 3)
    pooled = compare_samples(baseline, candidate)
    by_worker = compare_samples(baseline, candidate, candidate_workers=workers, baseline_workers=[0] * 30)
    assert by_worker.ci_high - by_worker.ci_low > 1.25 * (pooled.ci_high - pooled.ci_low)
    assert (by_worker.baseline_workers, by_worker.candidate_workers) == (1, 6)
    assert "1/6 workers" in by_worker.describe()


def test_pairs_are_resampled_by_the_worker_pair_that_took_them() -> None:
    rng = random.Random(5)
    offsets = [0.04, -0.04, 0.03, -0.03, 0.02, -0.02]
    baseline = [1.0 * (1 + rng.gauss(0, 0.002)) for _ in range(30)]
    candidate = [b * 1.06 * (1 + offsets[i // 5]) for i, b in enumerate(baseline)]
    pooled = compare_paired(baseline, candidate)
    by_worker = compare_paired(baseline, candidate, workers=[i // 5 for i in range(30)])
    assert by_worker.ci_high - by_worker.ci_low > 2 * (pooled.ci_high - pooled.ci_low)
    assert by_worker.baseline_workers == 6 and "6 workers" in by_worker.describe()


def test_worker_tags_must_match_the_samples() -> None:
    with pytest.raises(ValueError, match="3 worker tags for 4 samples"):
        compare_samples([1.0, 1.1, 1.0, 1.2], [1.0, 1.1, 1.0, 1.2], candidate_workers=[0, 0, 1])

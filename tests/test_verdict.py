"""Verdict logic on synthetic samples: no clocks, only made-up latencies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdperf.verdict import OUTCOMES, compare_samples


def noisy(n: int, centre: float, spread: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [centre * (1 + rng.gauss(0, spread)) for _ in range(n)]


def test_a_clear_20_percent_shift_is_slower() -> None:
    verdict = compare_samples(noisy(10, 1.0, 0.03, 1), noisy(10, 1.2, 0.03, 2), threshold=0.05)
    assert verdict.outcome == "slower" and verdict.ci_low > 1.05
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

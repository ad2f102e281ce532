"""Applies verdicts and budgets to one measured case: against the stored baseline, against
the interleaved control, and against the profile's memory limits."""

from __future__ import annotations

from typing import Any

from sdperf.config.profiles import Limits, VerdictPolicy
from sdperf.judging.statistics import Verdict, compare_paired, compare_samples
from sdperf.storage.results import CaseResult, round_figures, round_steps, round_workers, saved_latencies

MEMORY_KEYS = ("peak_rss_bytes", "cuda_max_reserved_bytes", "cuda_max_allocated_bytes")
_MIB = 2**20


def not_comparable(model: str, workload: dict[str, Any], bench: dict[str, Any]) -> str | None:
    """Why the baseline's figure measured something else than `model` on `workload` (None when it did not)."""
    info = bench.get("extra_info", {})
    if info.get("model") != model:
        return f"the baseline ran model {info.get('model')!r}, this run {model!r}"
    saved = info.get("workload")
    if saved is not None and saved != workload:
        return "the baseline ran another workload (prompt, size, steps or seed differ)"
    return None


def against_baseline(result: CaseResult, bench: dict[str, Any], policy: VerdictPolicy) -> dict[str, Verdict]:
    """Latency and memory verdicts of this run's rounds against the baseline's."""
    verdicts: dict[str, Verdict] = {}
    info = bench.get("extra_info", {})
    base_rounds = info.get("rounds", [])
    base, mine = saved_latencies(info), result.parent_latencies_s
    base_steps, my_steps = round_steps(base_rounds), round_steps(result.rounds)
    # Resampled by worker where the rounds say which worker took them (saved latencies align with rounds).
    base_workers = round_workers(base_rounds) if len(base_rounds) == len(base) else None
    if min(len(base), len(mine)) >= policy.min_rounds:
        verdicts["latency"] = compare_samples(
            base, mine, policy.threshold, policy.alpha, policy.session_noise, samples="rounds",
            baseline_workers=base_workers, candidate_workers=round_workers(result.rounds),
        )
    elif len(base_steps) >= 2 and len(my_steps) >= 2:
        # Few rounds (a Pi image takes 14 minutes): every denoising step is a sample.
        verdicts["latency"] = compare_samples(
            base_steps, my_steps, policy.threshold, policy.alpha, policy.session_noise, samples="steps",
            baseline_workers=round_workers(base_rounds, "step"), candidate_workers=round_workers(result.rounds, "step"),
        )
    for key in MEMORY_KEYS:
        base_memory = round_figures(base_rounds, key)
        my_memory = result.memory_samples(key)
        if len(base_memory) >= 2 and len(my_memory) >= 2:
            verdicts[key] = compare_samples(
                base_memory, my_memory, policy.memory_threshold, policy.alpha, samples="rounds",
                baseline_workers=round_workers(base_rounds, "figure", key),
                candidate_workers=round_workers(result.rounds, "figure", key),
            )
    return verdicts


def against_control(result: CaseResult, policy: VerdictPolicy) -> dict[str, Verdict]:
    """The case against the control timed alternately with it: pair i ran side by side."""
    pairs = min(len(result.control_latencies_s), len(result.parent_latencies_s))
    if pairs < 2:
        return {}
    return {
        "latency": compare_paired(
            result.control_latencies_s[:pairs], result.parent_latencies_s[:pairs], policy.threshold, policy.alpha,
            workers=_pair_workers(result, pairs),
        )
    }


def _pair_workers(result: CaseResult, pairs: int) -> list[int] | None:
    """Both sides get fresh workers together: a pair's case worker names its worker pair."""
    workers = round_workers(result.rounds)
    return workers[:pairs] if workers and len(workers) >= pairs else None


def against_side_a(result: CaseResult, policy: VerdictPolicy) -> dict[str, Verdict]:
    """An A/B case: B's rounds against A's, taken alternately. Latency pair by pair; with
    fewer pairs than `min_rounds` (a Pi image takes half an hour) every step is a sample.
    Memory per round, as against a baseline. No session noise: the sides ran side by side."""
    verdicts: dict[str, Verdict] = {}
    pairs = min(len(result.control_latencies_s), len(result.parent_latencies_s))
    a_steps, b_steps = round_steps(result.control_rounds), round_steps(result.rounds)
    if pairs >= policy.min_rounds:
        verdicts["latency"] = compare_paired(
            result.control_latencies_s[:pairs], result.parent_latencies_s[:pairs], policy.threshold, policy.alpha,
            workers=_pair_workers(result, pairs),
        )
    elif len(a_steps) >= 2 and len(b_steps) >= 2:
        verdicts["latency"] = compare_samples(
            a_steps, b_steps, policy.threshold, policy.alpha, samples="steps",
            baseline_workers=round_workers(result.control_rounds, "step"),
            candidate_workers=round_workers(result.rounds, "step"),
        )
    for key in MEMORY_KEYS:
        a_memory, b_memory = round_figures(result.control_rounds, key), result.memory_samples(key)
        if len(a_memory) >= 2 and len(b_memory) >= 2:
            verdicts[key] = compare_samples(
                a_memory, b_memory, policy.memory_threshold, policy.alpha, samples="rounds",
                baseline_workers=round_workers(result.control_rounds, "figure", key),
                candidate_workers=round_workers(result.rounds, "figure", key),
            )
    return verdicts


def regressions(verdicts: dict[str, Verdict]) -> list[str]:
    return [f"{name} {verdict.describe()}" for name, verdict in verdicts.items() if verdict.outcome == "slower"]


def gate(verdicts: dict[str, dict[str, Verdict]], ab_image: dict[str, Any] | None = None,
         baseline_source: str | None = None, sides: str = "B against A") -> list[str]:
    """Every reason a measured case fails: slower or bigger than the stored baseline, than the
    control timed beside it (--sdperf-interleave) or than side A (an A/B run), or, in an A/B
    run, another image from B. Each verdict gates alike: no comparison is report-only."""
    named = {"baseline": f"against {baseline_source or 'the baseline'}",
             "control": "against the interleaved control", "ab": sides}
    problems = [
        f"{named.get(against, against)}: {problem}"
        for against, found in verdicts.items()
        for problem in regressions(found)
    ]
    if ab_image and ab_image.get("outcome") == "changed":
        problems.append(f"{sides}: image " + ab_image["detail"])
    return problems


def budget_failures(result: CaseResult, limits: Limits, profile: str) -> list[str]:
    """Peak memory beyond the profile's budget, with the figure."""
    failures = []
    checks = (
        ("peak_rss_bytes", limits.peak_rss_mb, "peak RSS", "peak_rss_mb"),
        ("cuda_max_reserved_bytes", limits.cuda_reserved_mb, "peak CUDA memory reserved", "cuda_reserved_mb"),
    )
    for key, budget_mb, what, limit_name in checks:
        samples = result.memory_samples(key)
        if budget_mb is not None and samples and max(samples) > budget_mb * _MIB:
            failures.append(
                f"{what} {max(samples) / _MIB:.0f} MiB is over the {profile} budget of {budget_mb} MiB "
                f"(limits.{limit_name})"
            )
    return failures

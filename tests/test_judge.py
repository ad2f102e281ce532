"""Which samples a case is judged on, when a baseline is not comparable, and memory budgets."""

from __future__ import annotations

import dataclasses
import random

import pytest

from sdperf.config.profiles import Limits, VerdictPolicy, load_profiles
from sdperf.config.recipes import REGISTRY
from sdperf.execution.cases import make_case
from sdperf.judging import verdicts as judge
from sdperf.models.store import ModelSpec
from sdperf.storage.results import CaseResult, summarise

PROFILE = load_profiles()["pi5"]
CASE = make_case(PROFILE, REGISTRY["fp32"], ModelSpec("tiny-sd15"), {})


def measured(rounds: int, seconds: float, steps: int = 31, rss: float = 6e9, seed: int = 0) -> CaseResult:
    rng = random.Random(seed)
    result = CaseResult("pi5-fp32", "t", "pi5", "fp32", "tiny-sd15", workload=CASE.workload.to_json())
    for _ in range(rounds):
        step_s = [seconds / steps * (1 + rng.gauss(0, 0.01)) for _ in range(steps)]
        phases = {"text_encoding_s": 0.0, "denoise_s": sum(step_s), "vae_decode_s": 0.0, "other_s": 0.0, "image_sha256": "0" * 64}
        result.rounds.append({"wall_s": sum(step_s), "step_s": step_s, "peak_rss_bytes": rss, **phases})
        result.parent_latencies_s.append(sum(step_s))
    return result


def as_baseline(result: CaseResult) -> dict:
    return {"extra_info": summarise(result)}


def test_a_single_long_round_is_judged_on_its_denoising_steps() -> None:
    # One 14-minute Pi image per run: 31 step samples a side instead of one round.
    baseline, slower = measured(1, 851.0, seed=1), measured(1, 851.0 * 1.2, seed=2)
    verdicts = judge.against_baseline(slower, as_baseline(baseline), PROFILE.verdict)
    assert verdicts["latency"].samples == "steps" and verdicts["latency"].baseline_n == 31
    assert verdicts["latency"].outcome == "slower"
    assert "peak_rss_bytes" not in verdicts  # one figure a side is no sample
    assert judge.regressions(verdicts)[0].startswith("latency slower: +")


def test_enough_rounds_are_judged_as_rounds_and_memory_too() -> None:
    baseline, same = measured(6, 0.6, rss=5e8, seed=1), measured(6, 0.6, rss=5e8 * 1.3, seed=2)
    verdicts = judge.against_baseline(same, as_baseline(baseline), VerdictPolicy())
    assert verdicts["latency"].samples == "rounds" and verdicts["latency"].baseline_n == 6
    assert verdicts["latency"].outcome != "slower"
    assert verdicts["peak_rss_bytes"].outcome == "slower"
    assert judge.regressions(verdicts) == [f"peak_rss_bytes {verdicts['peak_rss_bytes'].describe()}"]


def test_baselines_of_another_model_or_workload_are_not_compared() -> None:
    result = measured(3, 1.0)
    info = summarise(result)
    assert judge.not_comparable(CASE.model.name, CASE.workload.to_json(), {"extra_info": info}) is None
    assert "model 'sd15-real'" in judge.not_comparable(CASE.model.name, CASE.workload.to_json(), {"extra_info": {**info, "model": "sd15-real"}})
    other = dataclasses.replace(CASE.workload, steps=5).to_json()
    assert "another workload" in judge.not_comparable(CASE.model.name, CASE.workload.to_json(), {"extra_info": {**info, "workload": other}})


def test_interleaved_rounds_are_judged_pair_by_pair() -> None:
    result = measured(8, 1.0)
    result.control_latencies_s = [x / 1.3 for x in result.parent_latencies_s]
    verdict = judge.against_control(result, VerdictPolicy())["latency"]
    assert verdict.design == "paired" and verdict.outcome == "slower"
    assert abs(verdict.ratio - 1.3) < 1e-9


def test_over_budget_names_the_figure_the_budget_and_the_key() -> None:
    result = measured(2, 1.0, rss=7500 * 2**20)
    assert judge.budget_failures(result, Limits(peak_rss_mb=7000), "pi5") == [
        "peak RSS 7500 MiB is over the pi5 budget of 7000 MiB (limits.peak_rss_mb)"
    ]
    assert judge.budget_failures(result, Limits(peak_rss_mb=8000), "pi5") == []
    result.rounds[0]["cuda_max_reserved_bytes"] = 6000 * 2**20
    assert judge.budget_failures(result, Limits(cuda_reserved_mb=5632), "cuda_lowvram") == [
        "peak CUDA memory reserved 6000 MiB is over the cuda_lowvram budget of 5632 MiB (limits.cuda_reserved_mb)"
    ]


def test_a_case_status_moves_only_where_its_transitions_allow() -> None:
    from sdperf.storage.results import Status, StatusError

    result = CaseResult(case_id="cpu-fp32", test="t", profile="cpu", recipe="fp32", model="tiny-sd15")
    assert result.status is Status.RUNNING and result.to_json()["status"] == "running"
    result.move_to(Status.PASSED)
    result.move_to(Status.REGRESSED, "latency slower")  # judged after timing
    assert (result.status, result.reason) == (Status.REGRESSED, "latency slower")
    with pytest.raises(StatusError, match="case cpu-fp32: cannot go from regressed to passed"):
        result.move_to(Status.PASSED)
    skipped = CaseResult(case_id="cpu-omp1", test="t", profile="cpu", recipe="omp1", model="tiny-sd15")
    skipped.move_to(Status.SKIPPED, "not here")
    with pytest.raises(StatusError, match="from skipped to failed"):
        skipped.move_to(Status.FAILED, "late failure")


def test_every_comparison_gates_alike_and_names_what_it_was_against() -> None:
    from sdperf.judging.statistics import compare_paired, compare_samples

    slower = compare_samples([1.0, 1.01, 0.99, 1.0, 1.02], [1.5, 1.51, 1.49, 1.5, 1.52])
    same = compare_paired([1.0, 1.01, 0.99, 1.0, 1.02, 1.0], [1.0, 1.01, 0.99, 1.0, 1.02, 1.0])
    assert judge.gate({"baseline": {"latency": same}}) == []
    [problem] = judge.gate({"control": {"latency": slower}})
    assert problem.startswith("against the interleaved control: latency slower: +")
    [problem] = judge.gate({"baseline": {"latency": slower}}, baseline_source="baselines/cpu/x/0001_baseline.json")
    assert problem.startswith("against baselines/cpu/x/0001_baseline.json: latency slower: +")
    changed = {"outcome": "changed", "detail": "B draws bbb where A drew aaa"}
    assert judge.gate({}, changed, sides="in B (head.txt) against A (base.txt)") == [
        "in B (head.txt) against A (base.txt): image B draws bbb where A drew aaa"
    ]

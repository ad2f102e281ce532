"""The regression gate end to end: baseline promotion, --benchmark-compare, verdicts that fail
a case as an ordinary test failure, interleaved controls, memory budgets, Markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CPU_KEY
from sdperf.cli.main import main
from sdperf.config.profiles import DEFAULT_PROFILES_FILE

# One worker a case unless a test is about rotation: each costs seconds of start and load.
EMULATED = ("-m", "cpu", "--sdperf-profile=cpu", "--sdperf-progress=0", "--sdperf-warmup=0", "--sdperf-workers=1")


def saved_runs(folder: Path) -> list[Path]:
    return sorted((folder / ".benchmarks" / CPU_KEY).glob("*/*.json"))


def seed_quiet_nights(history: Path, case: str, nights: int, spread: float):
    """`nights` A/A nights of `case` in the `--sdperf-profile=cpu` history, older than any real run, their
    medians alternating +-spread around 1 s; returns the noise the whole history now implies."""
    from sdperf.judging.noise import learn_noise
    from sdperf.storage.history import Place, load, machine_name, series

    place = Place(history, CPU_KEY, machine_name())
    for night in range(nights):
        median = 1.0 + (spread if night % 2 else -spread)
        entry = {"run": f"2000010{night}T000000Z-1-seeded", "case": case, "storage_key": CPU_KEY,
                 "machine": machine_name(), "median_s": median, "latencies_s": [median], "finished": "2000-01-01",
                 "recipe": "testonly_slowdown", "model": "tiny-sd15", "model_sha256": "seeded", "workload": {},
                 "environment": {"lock_sha256": "seeded", "sdperf_commit": "seeded"}, "status": "passed"}
        place.append(entry)
    return learn_noise(series(load(history, CPU_KEY).entries, case), prior=0.15)


def test_an_aa_rerun_passes_and_a_forced_regression_fails_with_a_summary_line(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own_history: Path
) -> None:
    case = ("--sdperf-recipes=testonly_slowdown", "--sdperf-rounds=5", "--benchmark-autosave", *EMULATED)
    monkeypatch.setenv("SDPERF_TESTONLY_SLOWDOWN", "0")
    latency_suite.runpytest(*case).assert_outcomes(passed=1)
    assert main(["promote", str(saved_runs(latency_suite.path)[0]), "--root", str(latency_suite.path)]) == 0
    # Baselines stay pytest-benchmark storage: its own command lists and compares them.
    listing = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "--storage",
         f"file://{latency_suite.path / 'baselines' / CPU_KEY}", "compare", "--columns=median"],
        capture_output=True, text=True, check=True,
    )
    assert "test_latency[cpu-testonly_slowdown]" in listing.stdout

    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    again = latency_suite.runpytest(*case, "--benchmark-compare")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines([f"compared with */baselines/{CPU_KEY}/*/0001_baseline.json"])
    assert "machine_info is different" not in again.stdout.str() + again.stderr.str()
    rerun = json.loads(saved_runs(latency_suite.path)[-1].read_text())
    latency = rerun["benchmarks"][0]["extra_info"]["verdicts"]["baseline"]["latency"]
    assert latency["outcome"] in ("same", "inconclusive", "faster") and latency["baseline_n"] == 5
    # One night in the history so far: the profile's prior noise widens the verdict, and says so.
    assert latency["session_noise"] == 0.15
    again.stdout.fnmatch_lines(["cpu-testonly_slowdown: history: calibrating: 0 of 5 nights; using the profile's "
                                "prior noise 15.0%; this runner sees a change of *% in one night, *"])
    page = summary.read_text()
    assert "| case | model | status |" in page and "cpu-testonly_slowdown" in page and "vs baseline" in page

    # Six quiet nights (seeded, older than these runs): the learned noise replaces the prior.
    learned = seed_quiet_nights(own_history, "cpu-testonly_slowdown", 6, 0.01)
    # Twice as slow: far beyond this noisy machine's session-to-session drift.
    monkeypatch.setenv("SDPERF_TESTONLY_SLOWDOWN", "1.0")
    slowed = latency_suite.runpytest(*case, "--benchmark-compare")
    slowed.assert_outcomes(failed=1)
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    slowed.stdout.fnmatch_lines([
        "*cpu-testonly_slowdown regressed against */0001_baseline.json: latency slower: +*",
        "FAILED test_latency.py::test_latency[[]cpu-testonly_slowdown[]]*",
        "=* 1 failed, * in *",
    ])
    # The slow run is a valid measurement: saved with its verdict, and promotable on purpose.
    last = json.loads(saved_runs(latency_suite.path)[-1].read_text())
    assert last["benchmarks"][0]["extra_info"]["verdicts"]["baseline"]["latency"]["outcome"] == "slower"
    assert last["benchmarks"][0]["extra_info"]["verdicts"]["baseline"]["latency"]["session_noise"] == learned.spread
    slowed.stdout.fnmatch_lines([f"*history: run-to-run noise {learned.spread:.1%}, learned from {learned.nights} nights "
                                 "with nothing changed*"])
    assert [c["status"] for c in last["sdperf"]["cases"] if c["kind"] == "latency" and c["status"] != "skipped"] == [
        "regressed"
    ]

    # pytest-benchmark's own gate still works for those who use it (it ends in its traceback); one
    # round twice as slow is enough for its median check.
    theirs = latency_suite.runpytest(*case, "--sdperf-rounds=1", "--benchmark-compare", "--benchmark-compare-fail=median:50%")
    assert theirs.ret != 0
    assert "Field 'median' has failed PercentageRegressionCheck" in theirs.stdout.str() + theirs.stderr.str()


def test_a_broken_baseline_stops_the_run_naming_the_file(latency_suite: pytest.Pytester) -> None:
    broken = latency_suite.path / "baselines" / CPU_KEY / "Linux-CPython-3.11-64bit" / "0001_baseline.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"machine_info": {"cpu": ')
    result = latency_suite.runpytest(*EMULATED, "--benchmark-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--benchmark-compare: {broken}: not valid JSON*truncated*"])


def test_compare_fail_without_a_baseline_says_how_to_make_one(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest(*EMULATED, "--benchmark-compare", "--benchmark-compare-fail=mean:5%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*no baseline for {CPU_KEY} in */baselines/{CPU_KEY}*--benchmark-autosave*sdperf promote RUN.json*"])


OVER_BUDGET = """
schema = 1
[profiles.cpu]
description = "test"
pipeline = "StableDiffusionPipeline"
builtin_model = "tiny-sd15"
recipes = ["fp32"]
[profiles.cpu.workload]
prompt = "a lighthouse"
height = 64
width = 64
steps = 3
[profiles.cpu.real]
rounds = 1
warmup = 0
timeout_s = 300
[profiles.cpu.builtin]
rounds = 1
warmup = 0
timeout_s = 300
[profiles.cpu.limits]
peak_rss_mb = 1
"""


def test_a_memory_budget_fails_the_case_with_the_figure(latency_suite: pytest.Pytester) -> None:
    latency_suite.makefile(".toml", profiles=OVER_BUDGET)
    result = latency_suite.runpytest(
        "--sdperf-profiles-file=profiles.toml", "--sdperf-progress=0", "--sdperf-workers=1",
        "--benchmark-json=run.json", "--sdperf-markdown=out/summary.md",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*case cpu-fp32: peak RSS * MiB is over the cpu budget of 1 MiB (limits.peak_rss_mb)*",
        "=* 1 failed in *",
    ])
    (case,) = json.loads((latency_suite.path / "run.json").read_text())["sdperf"]["cases"]
    assert case["status"] == "failed" and "over the cpu budget of 1 MiB" in case["reason"]
    assert "over the cpu budget" in (latency_suite.path / "out" / "summary.md").read_text()


def test_interleaved_rounds_are_judged_in_pairs_and_a_slowdown_fails_the_case_like_any_regression(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to print "slower" and pass. Every pair's rounds now carry their worker.
    monkeypatch.setenv("SDPERF_TESTONLY_SLOWDOWN", "1.0")
    shipped = DEFAULT_PROFILES_FILE.read_text()
    assert "\n[profiles.cpu.verdict]\n" in shipped
    latency_suite.makefile(".toml", profiles=shipped.replace(
        "\n[profiles.cpu.verdict]\n", "\n[profiles.cpu.verdict]\npairs_per_worker = 3\n"))
    result = latency_suite.runpytest(
        *EMULATED, "--sdperf-profiles-file=profiles.toml", "--sdperf-recipes=testonly_slowdown", "--sdperf-rounds=6",
        "--sdperf-interleave", "--benchmark-json=run.json",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*case cpu-testonly_slowdown regressed against the interleaved control: latency slower: +*",
        "*cpu-testonly_slowdown vs fp32 interleaved: latency slower: * 6 pairs, 2 workers)",
    ])
    saved = json.loads((latency_suite.path / "run.json").read_text())
    assert saved["sdperf"]["interleaved_with"]["cpu"] == "fp32"
    extra = saved["benchmarks"][0]["extra_info"]
    assert len(extra["latencies_s"]) == len(extra["control_latencies_s"]) == 6
    assert extra["verdicts"]["control"]["latency"]["design"] == "paired"
    (case,) = saved["sdperf"]["cases"]
    assert case["status"] == "regressed"
    # Fresh workers on both sides after the profile's 3 pairs (pairs_per_worker): rounds 1-3 in worker 0, 4-6 in 1.
    assert extra["workers_started"] == 2
    assert [r["worker"] for r in case["rounds"]] == [0] * 3 + [1] * 3
    assert [r["worker"] for r in case["control_rounds"]] == [0] * 3 + [1] * 3


BROKEN_FIXTURE = '''
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("set-up failed")

def test_latency(sdperf_bench):
    sdperf_bench.latency()

def test_latency_broken(sdperf_bench, broken):
    sdperf_bench.latency()
'''


def test_a_run_with_a_case_that_errored_is_not_promoted_and_says_which(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture
) -> None:
    pytester.makepyfile(test_latency=BROKEN_FIXTURE)
    result = pytester.runpytest(*EMULATED, "--sdperf-recipes=fp32", "--sdperf-rounds=2",
                                           "--benchmark-json=run.json")
    result.assert_outcomes(passed=1, errors=1)
    assert main(["promote", str(pytester.path / "run.json"), "--root", str(pytester.path)]) == 1
    refusal = capsys.readouterr().err
    assert "test_latency_broken[cpu-fp32]: error in setup: RuntimeError: set-up failed" in refusal
    assert not (pytester.path / "baselines").exists()

"""The nightly history: entries kept outside the checkout as cases finish, never lost or
overwritten; noise learned from nights with nothing changed; change points found where a
series shifted, and the nightly gate on them."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import random
from pathlib import Path

import pytest

from sdperf.cli.main import main
from sdperf.judging.changes import find_changes
from sdperf.judging.noise import learn_noise
from sdperf.reporting.history_report import what_changed
from sdperf.storage.history import HistoryError, Place, load, series

REPO = Path(__file__).resolve().parents[1]


def _trials():
    spec = importlib.util.spec_from_file_location("changepoint_trials", REPO / "tools" / "changepoint_trials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def night(run: str, median: float, case: str = "cpu-fp32", lock: str = "lock-1", **extra) -> dict:
    return {"run": run, "case": case, "storage_key": "cpu", "machine": "runner", "median_s": median,
            "latencies_s": [median], "finished": "2026-11-30T00:00:00+00:00", "recipe": "fp32", "model": "tiny-sd15",
            "model_sha256": "m1", "workload": {"steps": 4}, "status": "passed",
            "environment": {"lock_sha256": lock, "sdperf_commit": "c1", "lock_packages": {"torch": "2.13.0"}},
            **extra}


def write_nights(root: Path, medians: list[float], case: str = "cpu-fp32", slow_from: int | None = None) -> list[str]:
    """One entry a night; from `slow_from` on the lock names another torch. Returns the run ids."""
    place, runs = Place(root, "cpu", "runner"), []
    for index, median in enumerate(medians):
        run = f"202611{index + 1:02d}T010000Z-1-aaaaaa"
        changed = slow_from is not None and index >= slow_from
        entry = night(run, median, case, lock="lock-2" if changed else "lock-1")
        if changed:
            entry["environment"]["lock_packages"] = {"torch": "2.14.0"}
        place.append(entry)
        runs.append(run)
    return runs


# ---------------------------------------------------------------- storage


def test_an_entry_is_never_replaced_and_a_damaged_one_is_named_and_skipped(tmp_path: Path) -> None:
    place = Place(tmp_path, "cpu", "runner")
    place.append(night("r1", 1.0))
    with pytest.raises(HistoryError, match="exists already; history entries are never replaced"):
        place.append(night("r1", 2.0))
    (place.folder / "entries" / "r0--cpu-fp32.json").write_text('{"history_schema": 1, "run": "r0"')
    (place.folder / "entries" / "r2--cpu-fp32.json").write_text(json.dumps({"history_schema": 1, **night("r2", -1.0)}))
    (place.folder / "entries" / ".writing-abc.json").write_text("half a write")  # a killed writer's leftover
    loaded = load(tmp_path)
    assert [entry["median_s"] for entry in loaded.entries] == [1.0]
    reasons = {damaged.path.name: damaged.reason for damaged in loaded.damaged}
    assert set(reasons) == {"r0--cpu-fp32.json", "r2--cpu-fp32.json"}
    assert "not valid JSON" in reasons["r0--cpu-fp32.json"] and "not a positive time" in reasons["r2--cpu-fp32.json"]


def _writer(root: str, writer: int, count: int) -> None:
    place = Place(Path(root), "cpu", "runner")
    run = {"run": f"run-{writer}", "state": "running", "finished": {}}
    for index in range(count):
        place.append(night(f"run-{writer}", 1.0 + index / 1000, case=f"case-{index}"))
        run["finished"][f"case-{index}"] = "passed"
        place.write_run(run)


def test_two_runs_writing_one_history_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), writer, 150)) for writer in range(2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    loaded = load(tmp_path)
    assert not loaded.damaged
    assert len(loaded.entries) == 300
    assert {(entry["run"], entry["case"]) for entry in loaded.entries} == {
        (f"run-{writer}", f"case-{index}") for writer in range(2) for index in range(150)
    }
    assert [len(run["finished"]) for run in loaded.runs] == [150, 150]
    assert not list(tmp_path.rglob(".writing-*"))


# ---------------------------------------------------------------- noise


def test_noise_is_learned_from_nights_with_nothing_changed_and_calibrates_first() -> None:
    rng = random.Random(3)
    quiet = [night(f"r{i:02d}", 1.0 + rng.gauss(0, 0.02)) for i in range(12)]
    # The lock changed after night 6 and everything got 50% slower: never counted as noise.
    upgraded = quiet[:6] + [night(e["run"], e["median_s"] * 1.5, lock="lock-2") for e in quiet[6:]]
    learned = learn_noise(upgraded, prior=0.15)
    assert not learned.calibrating and learned.nights == 12
    assert 0.01 < learned.spread < 0.04 and learned.used == learned.spread
    assert learned.reference_nights == 6
    assert learned.detectable(3) < learned.detectable(1)
    assert "learned from 12 nights with nothing changed; this runner sees a change of" in learned.describe(0.05)

    early = learn_noise(upgraded[:3], prior=0.15)
    assert early.calibrating and early.used == 0.15
    assert early.describe().startswith("calibrating: 3 of 5 nights; using the profile's prior noise 15.0%")


def test_a_stored_baseline_verdict_with_session_noise_counts_runs_not_steps() -> None:
    from sdperf.judging.statistics import compare_samples

    rng = random.Random(1)
    baseline = [1.0 + rng.gauss(0, 0.01) for _ in range(31)]  # 31 steps of one run each side
    candidate = [1.06 + rng.gauss(0, 0.01) for _ in range(31)]
    alone = compare_samples(baseline, candidate, samples="steps")
    widened = compare_samples(baseline, candidate, session_noise=0.05, samples="steps")
    assert alone.p_value < 1e-6 and alone.outcome == "slower"
    # A 6% difference between two runs of a machine whose runs differ by 5%: not a regression.
    assert widened.p_value > 0.05 and widened.outcome == "inconclusive"


# ---------------------------------------------------------------- change points


def test_changes_are_found_near_the_true_night_in_synthetic_series() -> None:
    trials = _trials()
    rng = random.Random(2026)
    exact, near, gated = trials.delay_trial(rng, 0.02, 3, 20)
    assert exact >= 0.9  # 95-97% over 200 series (tools/changepoint_trials.py)
    exact, near, gated = trials.delay_trial(rng, 0.05, 5, 20)
    assert near >= 0.8
    false_per_100, nights = trials.false_rate(rng, 10)
    assert false_per_100 <= 1.0 and nights > 200


def test_a_wild_night_is_suspected_never_a_change() -> None:
    flat = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0]
    spiked = flat[:4] + [1.9] + flat[5:]
    assert find_changes(spiked, 0.05).changes == []
    newest = find_changes(flat + [1.5], 0.05)
    assert newest.changes == [] and newest.suspected["direction"] == "slower" and newest.gate() == "suspected"


def test_what_changed_names_lock_packages_commit_and_model() -> None:
    before = night("r1", 1.0)
    after = night("r2", 1.2, lock="lock-2", model_sha256="m2")
    after["environment"].update(lock_packages={"torch": "2.14.0", "numpy": "2.4.6"}, sdperf_commit="c2")
    assert what_changed(before, after) == [
        "numpy (none) -> 2.4.6", "torch 2.13.0 -> 2.14.0", "sdperf commit c1 -> c2",
        "model tiny-sd15 (m1) -> tiny-sd15 (m2)",
    ]


# ---------------------------------------------------------------- commands


def test_history_commands_print_the_series_and_the_change_and_gate_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = random.Random(5)
    medians = [1.0 + rng.gauss(0, 0.01) for _ in range(12)] + [1.2 + rng.gauss(0, 0.012) for _ in range(8)]
    runs = write_nights(tmp_path, medians, slow_from=12)
    write_nights(tmp_path, [1.0 + rng.gauss(0, 0.01) for _ in range(20)], case="cpu-omp1")

    assert main(["history", "show", "cpu-fp32", "--json", "--history", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [item["run"] for item in shown] == runs
    assert [item["median_s"] for item in shown] == medians

    assert main(["history", "changes", "--json", "--history", str(tmp_path)]) == 0
    changes = json.loads(capsys.readouterr().out)
    assert [(c["case"], c["first_run"]) for c in changes] == [("cpu-fp32", runs[12])]
    assert changes[0]["ratio"] == pytest.approx(1.2, abs=0.03) and changes[0]["ci_low"] > 1
    assert changes[0]["what_changed"] == ["torch 2.13.0 -> 2.14.0"]

    assert main(["history", "changes", "--gate", "--profile", "cpu", "--history", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "cpu/runner/cpu-fp32: confirmed slowdown +2" in err and runs[12] in err
    assert "changed that night: torch 2.13.0 -> 2.14.0" in out
    # Another profile's series (or the A/B runs, kept as ab-cpu) are not this gate's business.
    assert main(["history", "changes", "--gate", "--profile", "ab-cpu", "--history", str(tmp_path)]) == 0


def test_history_list_names_a_killed_runs_unfinished_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    place = Place(tmp_path, "cpu", "runner")
    place.append(night("r1", 1.0))
    place.write_run({"run": "r1", "state": "running", "storage_key": "cpu", "machine": "runner", "selected": ["t::a", "t::b"], "finished": {"t::a": {}},
                     "unfinished": ["t::b"], "entries": ["r1--cpu-fp32.json"]})
    assert main(["history", "list", "--history", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "r1  cpu/runner  running  1 of 2 case(s) finished, 1 kept  (no end recorded: killed, or still running)" in out
    assert "    unfinished: t::b" in out
    assert main(["history", "list", "--history", str(tmp_path / "none")]) == 1
    assert "no history in" in capsys.readouterr().err


def test_an_unwritable_history_folder_stops_the_run_at_start_naming_it_and_the_fix(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = pytester.runpytest(f"--sdperf-history={blocker / 'history'}", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*history folder {blocker / 'history'} (from --sdperf-history): {blocker} is not "
                                 "a folder; give a writable folder with --sdperf-history DIR or SDPERF_HISTORY, or "
                                 "keep no history with --sdperf-history=off*"])
    assert pytester.runpytest("--sdperf-history=off", "--collect-only").ret == pytest.ExitCode.NO_TESTS_COLLECTED


# ---------------------------------------------------------------- a run killed halfway

FOUR_CASES = """
def test_latency(sdperf_bench):
    sdperf_bench.latency()
"""

KILL_ON_THIRD_WORKER = """
import os, signal

started = []

def pytest_sdperf_worker_started(case, pid):
    started.append(pid)
    if len(started) == 3:  # the third case has begun: the job's timeout strikes
        os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_killed_after_its_second_of_four_cases_keeps_those_two(
    pytester: pytest.Pytester, own_history: Path
) -> None:
    pytester.makepyfile(test_latency=FOUR_CASES)
    pytester.makeconftest(KILL_ON_THIRD_WORKER)
    result = pytester.runpytest_subprocess(
        "-m", "cpu", "--sdperf-profile=cpu", "--sdperf-recipes=fp32,threads_unset,omp1,dpm_solver",
        "--sdperf-rounds=1", "--sdperf-warmup=0", "--sdperf-workers=1", "--sdperf-progress=0",
        "--benchmark-json=run.json", "-p", "no:cacheprovider",
    )
    assert result.ret == -9  # killed, not a pytest exit
    loaded = load(own_history)
    assert not loaded.damaged
    kept = [entry["case"] for entry in loaded.entries]
    assert sorted(kept) == ["cpu-fp32", "cpu-threads_unset"]
    (run,) = loaded.runs
    assert run["state"] == "running" and len(run["finished"]) == 2 and len(run["unfinished"]) == 2
    assert {entry["case"] for entry in series(loaded.entries, kept[0])} == {kept[0]}
    saved = json.loads((pytester.path / "run.json").read_text())
    assert sorted(b["param"] for b in saved["benchmarks"]) == sorted(kept)
    assert sorted(c["case_id"] for c in saved["sdperf"]["cases"] if c["status"] == "passed") == sorted(kept)
    assert len(saved["sdperf"]["run"]["unfinished"]) == 2

"""Saved runs and baselines: validation on load, promotion rules, layout, trend points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conftest import CPU_KEY
from sdperf.cli.main import main
from sdperf.reporting.trend import plot_trend, trend_points
from sdperf.storage.baselines import BaselineError, latest_baseline, load_run, promote
from sdperf.storage.results import RESULT_SCHEMA_VERSION

MACHINE = "Linux-CPython-3.11-64bit"


def benchmark_entry(case: str, latencies: list[float], verdicts: dict) -> dict:
    """One benchmark as pytest-benchmark saves it: its own Stats computes the figures."""
    from pytest_benchmark.stats import Stats

    timings = Stats()
    for latency in latencies:
        timings.update(latency)
    return {
        "group": None, "name": f"test_latency[{case}]", "fullname": f"perf/test_latency.py::test_latency[{case}]",
        "params": {"sdperf_case": case}, "param": case, "options": {"timer": "perf_counter", "warmup": False},
        "stats": {**timings.as_dict(), "data": list(latencies), "iterations": 1},
        "extra_info": {"latencies_s": latencies, "verdicts": verdicts, "model": "tiny-sd15",
                       "rounds": [{"wall_s": latency, "step_s": [latency / 2, latency / 2], "worker": 0,
                                   "peak_rss_bytes": 4e8} for latency in latencies]},
    }


def run_document(statuses: dict[str, str] | None = None, latencies: list[float] | None = None,
                 key: str = "pi5", outcome: str | None = None) -> dict:
    statuses = statuses or {"pi5-fp32": "passed"}
    latencies = latencies or [1.0, 1.1, 0.9]
    verdicts = {"baseline": {"latency": {"outcome": outcome}}} if outcome else {}
    return {
        "machine_info": {"sdperf": {"storage_key": key, "machine_id": MACHINE}},
        "datetime": "2026-11-21T10:00:00+00:00",
        "version": "5.3.1",
        "benchmarks": [
            benchmark_entry(case, latencies, verdicts)
            for case, status in statuses.items() if status in ("passed", "regressed")
        ],
        "sdperf": {"schema": RESULT_SCHEMA_VERSION, "cases": [
            {"case_id": case, "kind": "latency", "status": status, "reason": "worker killed" if status != "passed" else ""}
            for case, status in statuses.items()
        ], "run": {"selected": [f"perf/test_latency.py::test_latency[{case}]" for case in statuses], "unfinished": [],
                   "errors": {}, "collection_errors": 0, "interrupted": False, "exitstatus": 0}},
    }


def write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"machine_info": {}, "benchmarks": [', "not valid JSON .* truncated"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"benchmarks": []}', "not a pytest-benchmark result: missing machine_info, datetime"),
        ('{"machine_info": {}, "benchmarks": [], "datetime": "x"}', "no 'sdperf' section"),
        ('{"machine_info": {}, "benchmarks": [], "datetime": "x", "sdperf": {"schema": 99, "cases": []}}',
         "sdperf schema 99; this sdperf reads schemas 1, 2"),
        ('{"machine_info": {}, "benchmarks": [{"stats": {}}], "datetime": "x", "sdperf": {"schema": 2, "cases": []}}',
         r"benchmarks\[0\]: missing name, fullname, group, param, params, extra_info"),
        ('{"machine_info": {}, "benchmarks": [], "datetime": "x", "sdperf": {"schema": true, "cases": []}}',
         "sdperf schema True"),
    ],
)
def test_a_broken_or_foreign_file_is_refused_naming_it(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "0001_run.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=message) as caught:
        load_run(path)
    assert str(path) in str(caught.value)


def test_promotion_adds_the_next_numbered_file_and_never_replaces_one(tmp_path: Path) -> None:
    run = write(tmp_path / "run.json", run_document())
    first = promote(run, tmp_path)
    assert first == tmp_path / "baselines" / "pi5" / MACHINE / "0001_baseline.json"
    second = promote(run, tmp_path, label="after-upgrade")
    assert second.name == "0002_after-upgrade.json"
    assert latest_baseline(tmp_path, "pi5") == second
    assert load_run(first)["sdperf"]["cases"] == run_document()["sdperf"]["cases"]
    assert not list(second.parent.glob(".promote-*")), "temporary files are cleaned up"


def test_promotion_refuses_to_replace_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = write(tmp_path / "run.json", run_document())
    target = promote(run, tmp_path)
    before = target.read_bytes()
    # Another promotion racing this one took the number first: it must fail, not overwrite.
    monkeypatch.setattr("sdperf.storage.baselines.numbered_runs", lambda folder: [])
    with pytest.raises(BaselineError, match="exists already; promotion never replaces a baseline"):
        promote(run, tmp_path)
    assert target.read_bytes() == before


@pytest.mark.parametrize(
    ("statuses", "message"),
    [
        ({"pi5-fp32": "passed", "pi5-other": "failed"}, "pi5-other failed: worker killed"),
        ({"pi5-fp32": "invalid"}, "pi5-fp32 invalid: worker killed"),
        ({"pi5-fp32": "skipped"}, "no latency case passed in this run"),
    ],
)
def test_failed_or_invalid_runs_cannot_be_promoted(tmp_path: Path, statuses: dict, message: str) -> None:
    run = write(tmp_path / "run.json", run_document(statuses))
    with pytest.raises(BaselineError, match=message):
        promote(run, tmp_path)
    assert not (tmp_path / "baselines").exists()


def test_a_run_slower_than_its_baseline_can_still_be_accepted_on_purpose(tmp_path: Path) -> None:
    run = write(tmp_path / "run.json", run_document({"pi5-fp32": "regressed"}))
    assert promote(run, tmp_path).name == "0001_baseline.json"


def test_a_bad_label_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    run = write(tmp_path / "run.json", run_document())
    with pytest.raises(BaselineError, match="label '../x'"):
        promote(run, tmp_path, label="../x")


def test_the_promote_command_reports_refusals_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write(tmp_path / "run.json", run_document({"pi5-fp32": "failed"}))
    assert main(["promote", str(run), "--root", str(tmp_path)]) == 1
    assert "cannot be promoted" in capsys.readouterr().err
    good = write(tmp_path / "good.json", run_document())
    assert main(["promote", str(good), "--root", str(tmp_path)]) == 0
    assert "baselines/pi5/" in capsys.readouterr().out


def test_trend_points_follow_saved_runs_with_their_verdicts(tmp_path: Path) -> None:
    storage = tmp_path / ".benchmarks" / "pi5"
    write(storage / MACHINE / "0001_a.json", run_document(latencies=[1.0, 1.2, 1.1]))
    write(storage / MACHINE / "0002_b.json", run_document(latencies=[2.0, 2.2, 2.1], outcome="slower"))
    points = trend_points(storage, "pi5-fp32")
    assert [(p.run, p.median_s, p.outcome) for p in points] == [
        ("0001_a.json", 1.1, "none"), ("0002_b.json", 2.1, "slower")
    ]
    assert points[1].low_s <= points[1].median_s <= points[1].high_s
    out = plot_trend(points, "pi5-fp32", tmp_path / "trend.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trend_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no saved runs"):
        trend_points(tmp_path, "pi5-fp32")
    write(tmp_path / MACHINE / "0001_a.json", run_document())
    with pytest.raises(BaselineError, match="no saved run has case 'cpu-fp32'"):
        trend_points(tmp_path, "cpu-fp32")


def test_machine_differences_name_what_changed_since_the_baseline() -> None:
    from sdperf.storage.baselines import machine_differences

    saved = {"python_version": "3.11.7", "cpu": {"brand_raw": "Cortex-A76"},
             "sdperf": {"storage_key": "pi5", "lock_sha256": "a", "packages": {"torch": "2.12.0", "diffusers": "0.37.1"},
                        "workers": {"pi5-fp32": {"pid": 1}}}}
    current = {"python_version": "3.11.7", "cpu": {"brand_raw": "Cortex-A76"},
               "sdperf": {"storage_key": "pi5", "lock_sha256": "b", "packages": {"torch": "2.13.0", "diffusers": "0.37.1"},
                          "workers": {}}}
    assert machine_differences(current, saved) == ["lock a -> b", "torch 2.12.0 -> 2.13.0"]
    assert machine_differences(saved, saved) == []


@pytest.mark.parametrize(
    ("run", "refusal"),
    [
        ({"interrupted": True, "exitstatus": 2}, "the run was interrupted (exit status 2)"),
        ({"errors": {"perf/test_latency.py::test_latency[pi5-omp1]": "error in setup: boom"}},
         "perf/test_latency.py::test_latency[pi5-omp1]: error in setup: boom"),
        ({"unfinished": ["perf/test_latency.py::test_latency[pi5-omp1]"]},
         "cases selected but not finished: perf/test_latency.py::test_latency[pi5-omp1]"),
        ({"collection_errors": 1}, "1 collection error(s): some cases were never collected"),
        (None, "it records no run completeness (saved before schema 4)"),
    ],
)
def test_promotion_refuses_a_run_that_is_not_complete(tmp_path: Path, run: dict | None, refusal: str) -> None:
    document = run_document()
    if run is None:
        del document["sdperf"]["run"]
    else:
        document["sdperf"]["run"].update(run)
    with pytest.raises(BaselineError) as error:
        promote(write(tmp_path / "run.json", document), tmp_path)
    assert refusal in str(error.value)
    assert not (tmp_path / "baselines").exists()


# Schema: what is promoted and what is compared against. Each entry: how the run is broken,
# then the field path and the problem the refusal must name.
def set_stat(name: str, value: object):
    return lambda document: document["benchmarks"][0]["stats"].__setitem__(name, value)


BROKEN_RUNS = {
    "string stat": (set_stat("median", "0.4"), 'benchmarks[0].stats.median: the string "0.4" is not a number'),
    "null stat": (set_stat("mean", None), "benchmarks[0].stats.mean: null is not a number"),
    "negative median": (set_stat("median", -0.4), "benchmarks[0].stats.median: -0.4 is not a positive time"),
    "NaN": (set_stat("stddev", float("nan")), "benchmarks[0].stats.stddev: NaN is not a finite number"),
    "rounds not matching samples": (
        set_stat("rounds", 5), "benchmarks[0].stats.rounds: 5, but benchmarks[0].stats.data holds 3 sample(s)"
    ),
}

MORE_BROKEN_RUNS = {
    "infinite stat": (set_stat("max", float("inf")), "benchmarks[0].stats.max: Infinity is not a finite number"),
    "boolean stat": (set_stat("min", True), "benchmarks[0].stats.min: true (a boolean) is not a number"),
    "negative spread": (set_stat("iqr", -0.01), "benchmarks[0].stats.iqr: -0.01 is not a time >= 0"),
    "median outside min..max": (
        set_stat("median", 2.5), "benchmarks[0].stats.median: 2.5 is not between min 0.9 and max 1.1"
    ),
    "zero rounds": (set_stat("rounds", 0), "benchmarks[0].stats.rounds: 0 is below 1"),
    "negative sample": (
        lambda d: d["benchmarks"][0]["stats"]["data"].__setitem__(1, -1.1),
        "benchmarks[0].stats.data[1]: -1.1 is not a positive time",
    ),
    "missing stats": (
        lambda d: [d["benchmarks"][0]["stats"].pop(name) for name in ("q1", "q3")],
        "benchmarks[0].stats: missing q1, q3",
    ),
    # The sdperf verdict is judged on these, not on pytest-benchmark's stats: "faster -47%".
    "negative saved latency": (
        lambda d: d["benchmarks"][0]["extra_info"]["latencies_s"].__setitem__(0, -0.5),
        "benchmarks[0].extra_info.latencies_s[0]: -0.5 is not a positive time",
    ),
    "string round worker": (
        lambda d: d["benchmarks"][0]["extra_info"]["rounds"][2].__setitem__("worker", "0"),
        'benchmarks[0].extra_info.rounds[2].worker: the string "0" is not a whole number',
    ),
    "fullname not a string": (
        lambda d: d["benchmarks"][0].__setitem__("fullname", 3), "benchmarks[0].fullname: 3 is not a string"
    ),
    "unknown case status": (
        lambda d: d["sdperf"]["cases"][0].__setitem__("status", "ok"),
        "sdperf.cases[0].status: the string \"ok\" is not one of running, passed",
    ),
    "run errors not an object": (
        lambda d: d["sdperf"]["run"].__setitem__("errors", []), "sdperf.run.errors: a list is not an object"
    ),
    "machine id not a string": (
        lambda d: d["machine_info"]["sdperf"].__setitem__("machine_id", None),
        "machine_info.sdperf.machine_id: null is not a string",
    ),
}


def broken_run(path: Path, breaks) -> Path:
    document = run_document()
    breaks(document)
    return write(path, document)  # json.dumps writes NaN and Infinity as Python's json reads them


@pytest.mark.parametrize(("breaks", "problem"), BROKEN_RUNS.values(), ids=BROKEN_RUNS.keys())
def test_promote_refuses_a_run_with_wrong_types_or_impossible_values_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, breaks, problem: str
) -> None:
    run = broken_run(tmp_path / "run.json", breaks)
    assert main(["promote", str(run), "--root", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error == f"sdperf: {run}: {problem}; re-run the suite and promote a fresh run (sdperf promote RUN.json), " \
                    "or correct the file\n"
    assert not (tmp_path / "baselines").exists(), "nothing is copied"


@pytest.mark.parametrize(("breaks", "problem"), MORE_BROKEN_RUNS.values(), ids=MORE_BROKEN_RUNS.keys())
def test_every_field_read_later_is_checked_on_load(tmp_path: Path, breaks, problem: str) -> None:
    run = broken_run(tmp_path / "0001_run.json", breaks)
    with pytest.raises(BaselineError) as caught:
        load_run(run)
    assert f"{run}: " in str(caught.value)
    assert problem in str(caught.value)


def test_every_problem_is_listed_on_its_own_line_and_a_long_list_is_cut(tmp_path: Path) -> None:
    def break_three(document: dict) -> None:
        document["benchmarks"][0]["stats"].update(median="0.4", mean=None)
        document["benchmarks"][0]["extra_info"]["latencies_s"] = [-1.0] * 20

    with pytest.raises(BaselineError) as caught:
        load_run(broken_run(tmp_path / "run.json", break_three))
    lines = str(caught.value).splitlines()
    assert lines[0].endswith("22 problems; re-run the suite and promote a fresh run (sdperf promote RUN.json), "
                             "or correct the file:")
    assert lines[1:3] == ['  benchmarks[0].stats.mean: null is not a number',
                          '  benchmarks[0].stats.median: the string "0.4" is not a number']
    assert lines[-1] == "  ... and 14 more" and len(lines) == 10


def test_a_valid_run_still_promotes_and_loads_unchanged(tmp_path: Path) -> None:
    document = run_document()
    # A step whose start was not seen (OpenVINO) is recorded as 0 s; a round without a memory figure as null.
    document["benchmarks"][0]["extra_info"]["rounds"][0].update(step_s=[0.0, 1.0], peak_rss_bytes=None)
    run = write(tmp_path / "run.json", document)
    assert main(["promote", str(run), "--root", str(tmp_path)]) == 0
    promoted = tmp_path / "baselines" / "pi5" / MACHINE / "0001_baseline.json"
    assert load_run(promoted) == document


@hypothesis_settings(deadline=None, max_examples=200)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e5), min_size=1, max_size=30))
def test_stats_pytest_benchmark_computes_are_never_refused(latencies: list[float]) -> None:
    # Its quartiles interpolate and round: the order and sign checks must hold for any real samples.
    from sdperf.storage.run_schema import run_problems

    document = run_document()
    document["benchmarks"] = [benchmark_entry("pi5-fp32", latencies, {})]
    assert run_problems(json.loads(json.dumps(document))) == []


def test_the_schema_checks_the_memory_figures_that_verdicts_compare() -> None:
    from sdperf.judging.verdicts import MEMORY_KEYS
    from sdperf.storage.run_schema import ROUND_MEMORY_KEYS

    assert ROUND_MEMORY_KEYS == MEMORY_KEYS


def test_an_unreadable_run_is_bad_input_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["promote", str(tmp_path / "absent.json"), "--root", str(tmp_path)]) == 2
    assert "absent.json: cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("compare", ["--benchmark-compare", "--benchmark-compare=0001"])
def test_a_compare_against_a_broken_baseline_stops_at_start_naming_file_and_field(
    latency_suite: pytest.Pytester, compare: str
) -> None:
    # Bare: the profile's baseline in baselines/; with a value: pytest-benchmark's own storage.
    storage = latency_suite.path / ("baselines" if compare == "--benchmark-compare" else "runs") / CPU_KEY
    baseline = broken_run(storage / MACHINE / "0001_baseline.json", set_stat("median", -0.4))
    storage_option = [] if compare == "--benchmark-compare" else [f"--benchmark-storage=file://{storage}"]
    result = latency_suite.runpytest("-m", "cpu", "--sdperf-profile=cpu", compare, *storage_option, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--benchmark-compare: {baseline}: benchmarks?0?.stats.median: -0.4 is not a positive time; re-run*"]
    )
    assert "collected" not in result.stdout.str(), "stopped before collecting, so before any case"

"""Saved runs and baselines: validation on load, promotion rules, layout, trend points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdperf.cli.main import main
from sdperf.reporting.trend import plot_trend, trend_points
from sdperf.storage.baselines import BaselineError, latest_baseline, load_run, promote
from sdperf.storage.results import RESULT_SCHEMA_VERSION

MACHINE = "Linux-CPython-3.11-64bit"


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
            {"fullname": f"perf/test_latency.py::test_latency[{case}]", "param": case, "stats": {},
             "extra_info": {"latencies_s": latencies, "verdicts": verdicts}}
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
         "benchmark #0 lacks 'fullname' or 'stats'"),
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

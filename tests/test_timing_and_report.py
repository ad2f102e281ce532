"""Per-phase arithmetic and the results table, on made-up figures (no clocks involved)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdperf.judging.statistics import paired_overhead
from sdperf.reporting.markdown import markdown_report
from sdperf.reporting.table import results_table
from sdperf.storage.results import CaseResult
from sdperf.worker.timing import CallTimings


@given(
    text=st.floats(0, 5),
    gaps=st.lists(st.floats(0.001, 10), min_size=1, max_size=40),
    vae=st.floats(0, 5),
    extra=st.floats(0, 5),
)
def test_steps_sum_to_the_denoising_phase_and_phases_to_the_call(text, gaps, vae, extra) -> None:
    timings = CallTimings(started=0.0, text_encoding_s=text, vae_decode_s=vae, first_denoise=100.0)
    end = 100.0
    for gap in gaps:
        end += gap
        timings.step_ends.append(end)
    wall = text + (end - 100.0) + vae + extra
    summary = timings.summary(wall)
    assert sum(summary["step_s"]) == pytest.approx(summary["denoise_s"])
    phases = summary["text_encoding_s"] + summary["denoise_s"] + summary["vae_decode_s"] + summary["other_s"]
    assert phases == pytest.approx(wall)
    assert len(summary["step_s"]) == len(gaps)


def test_a_call_without_steps_has_no_denoising_time() -> None:
    assert CallTimings().summary(1.0)["denoise_s"] == 0.0


def test_paired_overhead_of_a_constant_one_percent() -> None:
    bare = [1.0, 1.2, 0.9, 1.1]
    overhead = paired_overhead([b * 1.01 for b in bare], bare)
    assert overhead["overhead"] == pytest.approx(0.01)
    assert overhead["ci_low"] <= 0.01 <= overhead["ci_high"]


def _result(**fields) -> CaseResult:
    base = dict(case_id="cpu-fp32", test="t", profile="cpu", recipe="fp32", model="tiny-sd15")
    return CaseResult(**{**base, **fields})


def test_table_shows_figures_failures_and_differing_images() -> None:
    round_ = {
        "text_encoding_s": 0.01, "denoise_s": 0.5, "vae_decode_s": 0.02, "other_s": 0.0,
        "step_s": [0.025] * 20, "peak_rss_bytes": 400 * 2**20, "image_sha256": "a" * 64,
    }
    passed = _result(status="passed", rounds=[round_, {**round_, "image_sha256": "b" * 64}],
                     parent_latencies_s=[0.5, 0.7], load={"load_s": 1.5})
    failed = _result(case_id="pi5-fp32", status="failed", reason="worker was killed by signal SIGKILL (9)")
    lines = results_table([passed, failed])
    row = next(line for line in lines if line.startswith("cpu-fp32"))
    assert "0.600" in row and "1.500" in row and "400" in row and "(+1 differ!)" in row
    assert "pi5-fp32 failed: worker was killed by signal SIGKILL (9)" in lines


def test_table_fits_a_terminal_leaving_out_detail_columns_and_saying_which() -> None:
    round_ = {"text_encoding_s": 0.01, "denoise_s": 0.5, "vae_decode_s": 0.02, "other_s": 0.0,
              "step_s": [0.025] * 20, "peak_rss_bytes": 400 * 2**20, "image_sha256": "a" * 64}
    passed = _result(status="passed", rounds=[round_, round_], parent_latencies_s=[0.5, 0.7], load={"load_s": 1.5})
    wide = results_table([passed])
    assert max(map(len, wide)) > 120 and not any(line.startswith("columns left out") for line in wide)
    narrow = results_table([passed], width=100)
    header, rule, row, note = narrow[:4]
    assert max(len(header), len(rule), len(row)) <= 100
    assert header.split()[:2] == ["case", "status"] and "vs" in header and "median" in header
    assert note.startswith("columns left out to fit 100 characters: ") and "mean s" in note and "first s" in note


def test_verdicts_and_published_figures_reach_the_table_and_the_markdown() -> None:
    from sdperf.judging.statistics import compare_samples

    slower = compare_samples([1.0, 1.01, 0.99, 1.0, 1.02], [1.5, 1.51, 1.49, 1.5, 1.52])
    result = _result(
        status="regressed", reason="latency " + slower.describe(), parent_latencies_s=[1.5, 1.51],
        verdicts={"baseline": {"latency": slower.to_json()}}, baseline_source="baselines/cpu/x/0001_baseline.json",
        reference={"latency_s": 32.3, "label": "fp32 | out of the box", "source": "HF blog", "comparable": False,
                   "why_not": "this run uses the built-in model"},
    )
    skipped = _result(case_id="pi5-fp32", status="skipped", reason="profile pi5 does not run here")
    lines = results_table([result, skipped])
    row = next(line for line in lines if line.startswith("cpu-fp32 "))
    assert "regressed" in row and "slower +50.0%" in row
    assert any(line.startswith("cpu-fp32 vs baseline baselines/cpu/x/0001_baseline.json: latency slower: +50.0%")
               for line in lines)
    page = markdown_report([result, skipped], "compared with baselines/cpu/x/0001_baseline.json")
    table_row = next(line for line in page.splitlines() if line.startswith("| cpu-fp32 |"))
    assert "❌ regressed" in table_row and "slower +50.0%" in table_row and "32.3 s (n/c)" in table_row
    assert "fp32 \\| out of the box" in page  # a pipe in a label cannot break the table
    assert "- skipped (pi5-fp32): profile pi5 does not run here" in page


def test_a_comparable_published_figure_is_shown_against_the_measured_one() -> None:
    reference = {"latency_s": 851.0, "label": "OMP 4", "source": "blog", "comparable": True, "why_not": ""}
    result = _result(case_id="pi5-fp32", status="passed", parent_latencies_s=[893.55], reference=reference)
    lines = results_table([result])
    assert "pi5-fp32 published: 851 s, OMP 4; measured here 893.5 s (+5%); source: blog" in lines


def test_after_the_table_the_run_says_where_it_was_saved_and_what_to_run_next(tmp_path) -> None:
    from pathlib import Path

    from sdperf.reporting.next_steps import next_steps

    saved = [tmp_path / ".benchmarks" / "cpu" / "Linux-CPython-3.11-64bit" / "0003_tag.json"]
    latency = _result(status="passed", kind="latency")
    lines = next_steps([latency], saved, "cpu", None, tmp_path)
    assert lines == [
        "saved: .benchmarks/cpu/Linux-CPython-3.11-64bit/0003_tag.json",
        "next: sdperf promote .benchmarks/cpu/Linux-CPython-3.11-64bit/0003_tag.json   # make this run the cpu "
        "baseline (baselines/cpu/)",
        "      pytest -m cpu --benchmark-compare   # judge a later run against that baseline",
        "      pytest -m cpu -k 'determinism or fidelity'   # the correctness checks: fixed-seed images against "
        "goldens, each recipe against the control image",
    ]
    # Checks ran: no advice to run them; an emulated run says how to emulate again.
    check = _result(case_id="cpu-fp32 determinism", status="passed", kind="determinism")
    emulated = next_steps([latency, check], saved, "emulated-cpu", "cpu", tmp_path)
    assert emulated[2] == "      pytest --sdperf-profile cpu -m cpu --benchmark-compare   # judge a later run against that baseline"
    assert len(emulated) == 3
    # Checks that could not show everything from one worker's images: the full checks are advised.
    partial = _result(case_id="cpu-fp32 determinism", status="passed", kind="determinism",
                      notes=["determinism: ...; across workers not shown: one worker drew them (...)"])
    assert next_steps([latency, partial], saved, "cpu", None, tmp_path)[-1].startswith(
        "      pytest -m cpu -k 'determinism or fidelity'   # the full correctness checks: ")
    # A JSON file only, an A/B run, or nothing timed: where it went, nothing to promote.
    assert next_steps([latency], [Path("/elsewhere/run.json")], "cpu", None, tmp_path) == ["saved: /elsewhere/run.json"]
    assert next_steps([latency], saved, "ab-cpu", None, tmp_path) == [f"saved: {saved[0].relative_to(tmp_path)}"]
    assert next_steps([_result(status="failed")], saved, "cpu", None, tmp_path)[1:] == []


def test_without_interleaving_vs_control_is_the_control_case_of_the_same_run_and_says_so() -> None:
    from sdperf.reporting.table import SAME_RUN_NOTE

    control = _result(status="passed", parent_latencies_s=[1.0, 1.0])
    faster = _result(case_id="cpu-dpm_solver", recipe="dpm_solver", status="passed", parent_latencies_s=[0.5, 0.5])
    other_profile = _result(case_id="pi5-omp1", profile="pi5", recipe="omp1", status="passed", parent_latencies_s=[2.0])
    lines = results_table([control, faster, other_profile], controls={"cpu": "fp32", "pi5": "fp32"})
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert rows["cpu-fp32"].endswith("(control)")
    assert rows["cpu-dpm_solver"].endswith("-50.0% same run")
    assert rows["pi5-omp1"].endswith("-")  # its control did not run here
    assert SAME_RUN_NOTE in lines
    # Without the profiles' controls (or when interleaved) nothing is made up.
    assert not any("same run" in line for line in results_table([control, faster]))

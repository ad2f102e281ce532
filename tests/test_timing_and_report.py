"""Per-phase arithmetic and the results table, on made-up figures (no clocks involved)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdperf.bench import paired_overhead
from sdperf.report import results_table
from sdperf.results import CaseResult
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

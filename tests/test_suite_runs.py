"""The benchmark suite run end to end the way users run it, on small workloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import builtin_model_path

# A profile table whose *real-weights* workload is tiny, so a real-model run stays cheap here.
SMALL_REAL_WORKLOAD = """
schema = 1
[profiles.cpu]
description = "test"
pipeline = "StableDiffusionPipeline"
builtin_model = "tiny-sd15"
recipes = ["fp32"]
[profiles.cpu.workload]
prompt = "a lighthouse"
height = 64
width = 96
steps = 3
[profiles.cpu.real]
rounds = 2
warmup = 1
timeout_s = 300
[profiles.cpu.builtin]
height = 128
rounds = 1
warmup = 0
timeout_s = 300
"""


def test_a_model_folder_runs_the_profiles_real_workload(latency_suite: pytest.Pytester) -> None:
    folder = builtin_model_path("tiny-sd15")
    latency_suite.makefile(".toml", profiles=SMALL_REAL_WORKLOAD)
    result = latency_suite.runpytest_subprocess(
        "--sdperf-profiles-file=profiles.toml", f"--sdperf-model={folder}", "--benchmark-json=run.json"
    )
    result.assert_outcomes(passed=1)
    saved = json.loads((latency_suite.path / "run.json").read_text())
    extra = saved["benchmarks"][0]["extra_info"]
    assert extra["model"] == folder.name
    assert extra["load"]["model_path"] == str(folder)
    # The real-weights workload and run size, not the built-in ones.
    assert [r["image_shape"] for r in extra["rounds"]] == [[1, 64, 96, 3]] * 2
    assert all(len(r["step_s"]) == r["denoiser_calls"] == 4 for r in extra["rounds"])  # PNDM: steps + 1


def test_a_model_of_another_pipeline_is_skipped_naming_both(latency_suite: pytest.Pytester) -> None:
    folder = builtin_model_path("tiny-sd3")
    result = latency_suite.runpytest_subprocess("-m", "cpu", "--sdperf-recipes=fp32", f"--sdperf-model={folder}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"*profile cpu needs a StableDiffusionPipeline model; {folder.name} is a StableDiffusion3Pipeline*"]
    )


def test_live_progress_shows_step_rate_and_time_left(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest_subprocess(
        "-m", "cpu", "--sdperf-recipes=fp32", "--sdperf-rounds=1", "--sdperf-warmup=0", "--sdperf-progress=0.01"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["[[]cpu-fp32[]] round 1/1: step */21, * s/it, about * s left in this image"])


def test_results_table_and_pytest_benchmark_compare_read_the_saved_run(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest_subprocess(
        "-m", "cpu", "--sdperf-recipes=fp32", "--sdperf-rounds=2", "--sdperf-warmup=1", "--benchmark-json=run.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sdperf results*", "case * status * mean s*", "cpu-fp32 * tiny-sd15 * passed * 2 *"])
    compare = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "compare", str(latency_suite.path / "run.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_latency[cpu-fp32]" in compare.stdout
    saved = json.loads(Path(latency_suite.path / "run.json").read_text())
    extra = saved["benchmarks"][0]["extra_info"]
    assert extra["sdperf_schema"] == saved["sdperf"]["schema"] == 4
    assert len(extra["latencies_s"]) == 2  # raw samples, kept for verdicts
    assert set(extra["phase_means_s"]) == {"text_encoding_s", "denoise_s", "vae_decode_s", "other_s"}
    assert extra["peak_rss_bytes"] > 0 and len(extra["image_sha256"]) == 1
    assert extra["load"]["audit"]["torch_threads"] >= 1


def test_saved_images_are_found_from_the_json_and_carry_their_settings(latency_suite: pytest.Pytester) -> None:
    from sdperf.common.pngmeta import read_png

    result = latency_suite.runpytest_subprocess(
        "-m", "cpu", "--sdperf-recipes=fp32", "--sdperf-rounds=1", "--sdperf-warmup=0",
        "--sdperf-save-images=images", "--benchmark-json=run.json",
    )
    result.assert_outcomes(passed=1)
    saved = json.loads((latency_suite.path / "run.json").read_text())
    images_dir = Path(saved["sdperf"]["images_dir"])
    image = Path(saved["benchmarks"][0]["extra_info"]["image_path"])
    assert image.parent == images_dir and images_dir.parent == latency_suite.path / "images"
    settings = read_png(image)
    assert (settings.prompt, settings.seed, settings.steps) == ("sailing ship in storm by Rembrandt", 0, 20)
    assert (settings.width, settings.height, settings.recipe, settings.model) == (128, 128, "fp32", "tiny-sd15")
    assert settings.scheduler == "PNDMScheduler" and settings.guidance == 7.5
    assert settings.model_sha256 == saved["benchmarks"][0]["extra_info"]["load"]["weights_sha256"]
    assert settings.packages["torch"].startswith("2.")

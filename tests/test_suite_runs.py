"""The benchmark suite run end to end the way users run it: one run of every `cpu` recipe
(`cpu_run`, shared with the recipe and correctness tests) asserted from several angles,
and a folder of real-format weights run with its profile's real workload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ModelFolderRuns, SuiteRun


def test_a_model_folder_runs_the_profiles_real_workload(model_folder_runs: ModelFolderRuns) -> None:
    run = model_folder_runs.recorded
    assert run.outcomes() == {"passed": 2, "deselected": 1}, run.stdout[-3000:]
    saved = run.saved()
    extra = saved["benchmarks"][0]["extra_info"]
    folder = model_folder_runs.model
    assert extra["model"] == folder.name
    assert extra["load"]["model_path"] == str(folder)
    # The real-weights workload and run size, not the built-in ones.
    assert [r["image_shape"] for r in extra["rounds"]] == [[1, 64, 96, 3]] * 2
    assert all(len(r["step_s"]) == r["denoiser_calls"] == 4 for r in extra["rounds"])  # PNDM: steps + 1


def test_live_progress_shows_step_rate_and_time_left(cpu_run: SuiteRun) -> None:
    cpu_run.lines().fnmatch_lines([
        "[[]cpu-fp32[]] warm-up 1/1: step */21, * s/it, about * s left in this image",
        "[[]cpu-fp32[]] round 1/2: step */21, * s/it, about * s left in this image",
    ])


def test_results_table_and_pytest_benchmark_compare_read_the_saved_run(cpu_run: SuiteRun) -> None:
    cpu_run.lines().fnmatch_lines(["*sdperf results*", "case * status * mean s*", "cpu-fp32 * tiny-sd15 * passed * 2 *"])
    assert "Name (time in" not in cpu_run.stdout  # one table: pytest-benchmark's own is left out
    compare = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "compare", str(cpu_run.folder / "run.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_latency[cpu-fp32]" in compare.stdout
    saved = cpu_run.saved()
    extra = next(b for b in saved["benchmarks"] if b["name"] == "test_latency[cpu-fp32]")["extra_info"]
    assert extra["sdperf_schema"] == saved["sdperf"]["schema"] == 6
    assert len(extra["latencies_s"]) == 2  # raw samples, kept for verdicts
    assert set(extra["phase_means_s"]) == {"text_encoding_s", "denoise_s", "vae_decode_s", "other_s"}
    assert extra["peak_rss_bytes"] > 0 and len(extra["image_sha256"]) == 1
    assert extra["load"]["audit"]["torch_threads"] >= 1
    # The case parameter is saved as its id: pytest-benchmark's CSV and compare columns read it.
    assert next(b for b in saved["benchmarks"] if b["name"] == "test_latency[cpu-fp32]")["params"] == {
        "sdperf_case": "cpu-fp32"
    }
    case = cpu_run.cases()["cpu-fp32"]
    assert [r["worker"] for r in case["rounds"]] == [0, 0] and case["workers_started"] == 1
    assert [w["worker"] for w in case["warmup_images"]] == [0]


def test_rounds_rotate_over_fresh_workers_and_determinism_spans_them(model_folder_runs: ModelFolderRuns) -> None:
    run = model_folder_runs.recorded
    case = run.cases()["cpu-fp32"]
    # Rounds spread over two fresh workers, each warmed up first; every image's hash kept.
    assert [r["worker"] for r in case["rounds"]] == [0, 1] and case["workers_started"] == 2
    assert [w["worker"] for w in case["warmup_images"]] == [0, 1]
    # The determinism check judged those four images, across both processes, drawing none.
    note = run.note("cpu-fp32 determinism")
    assert "4 images in 2 worker(s), all " in note and "(drawn by the cpu-fp32 benchmark)" in note, note
    # The checks saw everything the full ones would: nothing to advise.
    assert "determinism or fidelity'" not in run.stdout


def test_after_the_table_the_run_says_where_it_went_and_what_to_run_next(cpu_run: SuiteRun) -> None:
    (autosaved,) = (cpu_run.folder / ".benchmarks" / "cpu").glob("*/0001_*.json")
    shown = autosaved.relative_to(cpu_run.folder)
    cpu_run.lines().fnmatch_lines([
        "saved: run.json",
        f"saved: {shown}",
        f"next: sdperf promote {shown}   # make this run the cpu baseline (baselines/cpu/)",
        "      pytest -m cpu --benchmark-compare   # judge a later run against that baseline",
    ])
    # pytest-benchmark's own commands find the profile's runs as the README says: --storage .benchmarks/<profile>.
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "--storage", ".benchmarks/cpu", "list"],
        cwd=cpu_run.folder, capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0 and autosaved.name in listed.stdout, listed.stdout + listed.stderr
    # One worker a case (as `make bench`): the checks could not show a fresh process, and the run says how to.
    cpu_run.lines().fnmatch_lines([
        "      pytest -m cpu -k 'determinism or fidelity'   # the full correctness checks: each fixed-seed image "
        "twice in one worker and again in a fresh one (this run showed less)",
    ])
    assert "| cpu-fp32 | tiny-sd15 | ✅ passed |" in (cpu_run.folder / "summary.md").read_text()


def test_saved_images_are_found_from_the_json_and_carry_their_settings(cpu_run: SuiteRun) -> None:
    from sdperf.common.pngmeta import read_png

    saved = cpu_run.saved()
    images_dir = Path(saved["sdperf"]["images_dir"])
    benchmark = next(b for b in saved["benchmarks"] if b["name"] == "test_latency[cpu-fp32]")
    image = Path(benchmark["extra_info"]["image_path"])
    assert image.parent == images_dir and images_dir.parent == cpu_run.folder / "images"
    settings = read_png(image)
    assert (settings.prompt, settings.seed, settings.steps) == ("sailing ship in storm by Rembrandt", 0, 20)
    assert (settings.width, settings.height, settings.recipe, settings.model) == (128, 128, "fp32", "tiny-sd15")
    assert settings.scheduler == "PNDMScheduler" and settings.guidance == 7.5
    assert settings.model_sha256 == benchmark["extra_info"]["load"]["weights_sha256"]
    assert settings.packages["torch"].startswith("2.")

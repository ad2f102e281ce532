"""Determinism against goldens, fidelity per recipe, and the goldens shipped for this stack.

The checks judge the images a run's benchmarks drew; the end-to-end runs here are shared
(`cpu_run`, `model_folder_runs` in conftest.py) or one per emulated profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GOLDENS, ModelFolderRuns, SuiteRun, run_suite


def test_a_golden_is_recorded_then_matched(model_folder_runs: ModelFolderRuns) -> None:
    first, again = model_folder_runs.recorded, model_folder_runs.matched
    first.lines().fnmatch_lines(["cpu-fp32 determinism: passed: determinism: recorded golden *"])
    assert len(list((first.folder / "golden" / "cpu").glob(f"cpu-fp32--{model_folder_runs.model.name}--stack-*.json"))) == 1
    assert again.outcomes() == {"passed": 2, "deselected": 1}, again.stdout[-3000:]
    again.lines().fnmatch_lines([
        f"cpu-fp32 determinism: passed: determinism: matches golden cpu-fp32--{model_folder_runs.model.name}--*"
        # The benchmark's warm-up and two rounds in one worker, judged; no image drawn for the check.
        "; 3 images in 1 worker(s), all *; across workers not shown: one worker drew them "
        "(run the case with --sdperf-workers 2 to show it) (drawn by the cpu-fp32 benchmark)",
    ])


def test_a_perturbed_weight_file_is_caught(model_folder_runs: ModelFolderRuns) -> None:
    result = model_folder_runs.perturbed
    assert result.outcomes() == {"passed": 1, "failed": 1, "deselected": 1}, result.stdout[-3000:]
    result.lines().fnmatch_lines(["*determinism regression: the fixed-seed image changed from the golden * model weights changed*"])
    review = next(result.folder.rglob("cpu-fp32-determinism"))
    assert {p.name for p in review.iterdir()} == {"old.png", "new.png", "diff.png"}


def test_every_cpu_recipe_is_checked_on_the_images_its_benchmark_drew(cpu_run: SuiteRun) -> None:
    outcomes = cpu_run.outcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, cpu_run.stdout[-5000:]
    cases = cpu_run.cases()
    timed = [case["recipe"] for case in cases.values() if case["kind"] == "latency" and case["status"] == "passed"]
    assert {"fp32", "dpm_solver", "omp1", "bf16"} <= set(timed)
    for recipe in timed:
        # One worker's warm-up and two rounds: every image the check judged, none of its own.
        note = cpu_run.note(f"cpu-{recipe} determinism")
        assert "3 images in 1 worker(s), all " in note and "(drawn by the cpu-" + recipe + " benchmark)" in note, note
        if recipe != "fp32":
            assert "drawn by the cpu-" + recipe + " benchmark and the cpu-fp32 benchmark" in cpu_run.note(f"cpu-{recipe} fidelity")
    cpu_run.lines().fnmatch_lines([
        "cpu-dpm_solver fidelity: passed: fidelity vs cpu-fp32: PSNR * dB (promise: changes-image, floor 20 dB; *",
        "skipped (cpu-fp32 fidelity): fp32 is the reference the other recipes are compared with",
    ])


def _png(path: Path, value: int) -> Path:
    """A flat 16x16 image; two of them 10 apart in one channel are 32.9 dB apart (10 log10(255^2 * 3 / 100))."""
    from PIL import Image

    Image.new("RGB", (16, 16), (value, 100, 100)).save(path)
    return path


def _check(recipe_fields: dict, tmp_path: Path, ours: int, theirs: int, model: str = "tiny-sd15"):
    """A CaseCheck of the cpu profile's built-in workload for a made-up recipe, on a ledger where
    the run's benchmarks drew the recipe's and the reference's images (two PNGs): no worker."""
    from sdperf.config.profiles import load_profiles
    from sdperf.config.recipes import REGISTRY, Recipe
    from sdperf.execution.cases import make_case
    from sdperf.models.store import ModelSpec
    from sdperf.pytest_plugin.checks import CaseCheck, GoldenPolicy
    from sdperf.pytest_plugin.run_images import DrawnImages, RunImages
    from sdperf.storage.results import CaseResult

    profile = load_profiles()["cpu"]
    recipe = Recipe(name="probe", summary="test only", profiles=("cpu",), transforms=("dpm_solver",), **recipe_fields)
    case = make_case(profile, recipe, ModelSpec(model), {"timeout_s": 300})
    reference = make_case(profile, REGISTRY["fp32"], ModelSpec(model), {"timeout_s": 300})
    images = RunImages(lambda: tmp_path, keep=False)
    for drawn_case, value in ((case, ours), (reference, theirs)):
        png = _png(tmp_path / f"{drawn_case.id}.png", value)
        load = {"audit": {"packages": {}, "cpu_kernels": "AVX2-AuthenticAMD"}, "weights_sha256": "0" * 64}
        images.record(drawn_case, DrawnImages(f"the {drawn_case.id} benchmark", [(0, str(value) * 64)], load, png))
    result = CaseResult(case.id, "t", "cpu", "probe", model, kind="fidelity")
    return CaseCheck(case, result, recipe, reference, images, tmp_path, GoldenPolicy(Path("."), "cpu", False))


def test_a_recipe_below_its_psnr_floor_fails_and_keeps_both_images(tmp_path: Path) -> None:
    check = _check({"fidelity": "changes-image", "min_psnr_db": 99.0, "fidelity_evidence": "test"}, tmp_path, 110, 100)
    with pytest.raises(pytest.fail.Exception, match=r"gives PSNR 32.9 dB against cpu-fp32, below its floor of 99 dB"):
        check.fidelity()
    assert {p.name for p in (tmp_path / "cpu-probe-fidelity").iterdir()} == {"recipe.png", "reference.png"}
    assert check.result.status == "failed" and "below its floor of 99 dB" in check.result.reason


def test_a_recipe_within_its_floor_passes_naming_who_drew_the_images(tmp_path: Path) -> None:
    check = _check({"fidelity": "changes-image", "min_psnr_db": 20.0, "fidelity_evidence": "test"}, tmp_path, 110, 100)
    check.fidelity()
    assert check.result.status == "passed"
    assert check.result.notes[-1].startswith("fidelity vs cpu-fp32: PSNR 32.9 dB (promise: changes-image, floor 20 dB")
    assert "drawn by the cpu-probe benchmark and the cpu-fp32 benchmark" in check.result.notes[-1]


def test_a_recipe_that_breaks_its_bit_exact_promise_fails(tmp_path: Path) -> None:
    check = _check({"fidelity": "bit-exact"}, tmp_path, 101, 100)
    with pytest.raises(pytest.fail.Exception, match="promises a bit-exact image but differs from cpu-fp32"):
        check.fidelity()


def test_a_check_of_a_benchmark_that_failed_fails_with_its_reason_and_draws_nothing(tmp_path: Path) -> None:
    from sdperf.pytest_plugin.run_images import DrawnImages

    check = _check({"fidelity": "bit-exact"}, tmp_path, 100, 100)
    check.images.record(check.case, DrawnImages("the cpu-probe benchmark", [], {}, None,
                                                stopped="worker was killed by signal SIGKILL (9)"))
    with pytest.raises(pytest.fail.Exception, match=r"no image of cpu-probe to check: the cpu-probe benchmark drew "
                                                    r"none: worker was killed by signal SIGKILL \(9\)"):
        check.determinism()


def test_a_full_size_built_in_model_skips_fidelity_and_goldens_saying_why(tmp_path: Path) -> None:
    # Synthetic weights of the real shapes: what an image looks like means nothing, its repeatability does.
    check = _check({"fidelity": "bit-exact"}, tmp_path, 101, 100, model="sd15")
    with pytest.raises(pytest.skip.Exception, match="fidelity not judged: builtin:sd15 has synthetic weights of the "
                                                    "published shapes: latency and memory compare with real weights"):
        check.fidelity()
    (tmp_path / "again").mkdir()
    again = _check({"fidelity": "bit-exact"}, tmp_path / "again", 101, 100, model="sd15")
    again.determinism()
    assert again.result.status == "passed"
    assert "; no golden: builtin:sd15 has synthetic weights of the published shapes" in again.result.notes[-1]


A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("images", "problem", "evidence"),
    [
        ([(0, A), (0, A), (1, A), (1, A)], None, "4 images in 2 worker(s), all aaaaaaaaaaaa"),
        ([(0, A), (0, B)], "two generations with one seed in one worker differ (aaaaaaaaaaaa then bbbbbbbbbbbb)", ""),
        ([(0, A), (0, A), (1, B)], "two fresh workers give different images for one seed (aaaaaaaaaaaa and bbbbbbbbbbbb)",
         ""),
        # A Pi's real-weights run: one image, one worker; what it cannot show is said, not passed over.
        ([(0, A)], None, "within one worker not shown: no worker drew two images; across workers not shown: "
                         "one worker drew them (advice)"),
        ([(0, A), (1, A)], None, "2 fresh workers drew aaaaaaaaaaaa; within one worker not shown"),
        ([], "no image was drawn, so determinism cannot be judged", ""),
    ],
)
def test_determinism_is_judged_from_the_images_each_worker_drew(images, problem, evidence) -> None:
    from sdperf.judging.determinism import judge_determinism

    found = judge_determinism("cpu-x", images, "advice")
    if problem:
        assert found.problem == f"case cpu-x: {problem}"
    else:
        assert found.problem is None and found.evidence().startswith(evidence)


def shipped_goldens_for_this_host(profile: str, cpu_run: SuiteRun) -> list[str]:
    """The goldens shipped for `profile`, this host's CPU kernels and the installed pixel
    packages (as the cpu run's fp32 worker reported them)."""
    from sdperf.storage.goldens import stack_digest

    audit = cpu_run.cases()["cpu-fp32"]["load"]["audit"]
    folder = GOLDENS / ("cpu" if profile == "cpu" else f"emulated-{profile}")
    pattern = f"*--stack-{stack_digest(audit['packages'])}--{audit['cpu_kernels']}.json"
    return sorted(path.stem for path in folder.glob(pattern))


@pytest.mark.parametrize(("emulated", "checked_as"), [("sapphire_rapids", "cpu"), ("pi4", "pi5")])
def test_emulated_cases_compute_the_cases_checked_in_full(emulated: str, checked_as: str) -> None:
    """What lets one run's checks stand for another profile's: on the built-in model, emulated
    here, each `emulated` case runs the `checked_as` case's workload, process settings and recipe,
    so draws its image (and the goldens recorded for both agree). If a profile change breaks
    this, run every recipe of `emulated` in the test above."""
    import dataclasses

    from sdperf.config.profiles import load_profiles
    from sdperf.config.recipes import REGISTRY
    from sdperf.execution.cases import make_case
    from sdperf.models.store import ModelSpec

    profiles = load_profiles()
    assert set(profiles[emulated].recipes) <= set(profiles[checked_as].recipes)
    for recipe in profiles[emulated].recipes:
        ours, theirs = (make_case(profiles[name], REGISTRY[recipe], ModelSpec("tiny-sd15"), {}) for name in (emulated, checked_as))
        assert dataclasses.replace(ours, profile=checked_as, run=theirs.run) == theirs, recipe
    folder = GOLDENS / ("cpu" if checked_as == "cpu" else f"emulated-{checked_as}")
    for golden in (GOLDENS / f"emulated-{emulated}").glob("*.json"):
        twin = folder / golden.name.replace(f"{emulated}-", f"{checked_as}-", 1)
        assert json.loads(golden.read_text())["image_sha256"] == json.loads(twin.read_text())["image_sha256"], golden.name


@pytest.mark.parametrize(("cpuinfo", "vendor"), [
    ("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: avx512f\n", "AuthenticAMD"),
    ("processor\t: 0\nvendor_id\t: GenuineIntel\n", "GenuineIntel"),
    ("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n", "implementer-0x41"),
    ("processor\t: 0\n", "unknown"),
])
def test_the_kernel_set_of_a_golden_names_the_cpu_vendor(tmp_path: Path, cpuinfo: str, vendor: str) -> None:
    # MKL and oneDNN pick code paths by vendor: an AMD EPYC with AVX-512 drew another fp32 image
    # (20b043bf4be6) than the Ice Lake the AVX512 goldens came from (4f265eae1ffc).
    from sdperf.worker.audit import cpu_vendor

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert cpu_vendor(tmp_path / "cpuinfo") == vendor
    assert cpu_vendor(tmp_path / "absent") == "unknown"


def test_goldens_are_shipped_for_this_hosts_kernels_and_stack(cpu_run: SuiteRun) -> None:
    # Recorded for the pinned stack on the kernel sets this project's machines have had (Intel and AMD
    # with AVX-512, AMD with AVX2): a fresh clone compares on any of them.
    assert shipped_goldens_for_this_host("cpu", cpu_run), "no golden for this host's kernels and stack in baselines/golden/cpu"
    for stem in shipped_goldens_for_this_host("cpu", cpu_run):
        cpu_run.lines().fnmatch_lines([f"*determinism: matches golden {stem}.json*"])
    # Emulated here, a sapphire_rapids case computes exactly the cpu case of its recipe, and its
    # goldens hold the cpu goldens' images (test_emulated_cases_compute_the_cases_checked_in_full):
    # the cpu goldens this run matched stand for them, with no run of their own.
    matched = set(shipped_goldens_for_this_host("cpu", cpu_run))
    twins = shipped_goldens_for_this_host("sapphire_rapids", cpu_run)
    assert twins, "no sapphire_rapids golden for this host's kernels and stack"
    assert {stem.replace("sapphire_rapids-", "cpu-", 1) for stem in twins} <= matched


@pytest.mark.parametrize("profile", ["pi4", "pi5"])
def test_shipped_goldens_hold_for_every_emulated_pi_profile(
    tmp_path: Path, request: pytest.FixtureRequest, cpu_run: SuiteRun, profile: str
) -> None:
    """Every recipe's correctness checks on the built-in model, emulating each Pi profile; where
    the repository holds a golden for this host's stack and CPU kernels, the image must match it."""
    if profile == "pi5":
        result = request.getfixturevalue("pi5_emulated_run")  # shared with the storage test
    else:
        # The checks alone: they draw their own images, and the control image once for every fidelity
        # check. Emulated here, a pi4 case computes the pi5 case of its recipe (the test above), which
        # pi5_emulated_run checks for every recipe: the control's determinism (its golden) and one
        # recipe's fidelity show the path; the control image is drawn once, by the first check.
        result = run_suite(
            tmp_path, "-m", profile, f"--sdperf-profile={profile}", f"--sdperf-golden-dir={GOLDENS}",
            "--sdperf-recipes=fp32,omp1", "-k", "determinism and fp32 or fidelity and omp1",
            "--sdperf-progress=0", "-rs", files=("test_correctness.py",),
        )
    outcomes = result.outcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout[-5000:]
    assert outcomes.get("passed", 0) >= 1
    # Each golden shipped for this profile, these pixel packages and this CPU's kernels is found
    # and compared (a golden that is never found passes with a note: it proves nothing).
    for stem in shipped_goldens_for_this_host(profile, cpu_run):
        result.lines().fnmatch_lines([f"*determinism: matches golden {stem}.json*"])
    fidelity = [line for line in result.stdout.splitlines() if line.startswith(f"{profile}-") and " fidelity: passed:" in line]
    assert fidelity, result.stdout[-3000:]
    # pi4: the control image is drawn once per run, by the first check that needed it.
    drawn_by = f"and the {profile}-fp32 determinism check)" if profile == "pi4" else f"and the {profile}-fp32 benchmark)"
    assert all(line.endswith(drawn_by) for line in fidelity), fidelity

"""Determinism against goldens, fidelity per recipe, and the goldens shipped for this stack."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from test_suite_runs import SMALL_REAL_WORKLOAD

REPO = Path(__file__).resolve().parents[1]
CORRECTNESS_TESTS = (REPO / "perf" / "test_correctness.py").read_text()


@pytest.fixture
def correctness_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_correctness=CORRECTNESS_TESTS)
    pytester.makefile(".toml", profiles=SMALL_REAL_WORKLOAD)
    return pytester


def perturb_one_value(safetensors_file: Path) -> None:
    """Add 1.0 to the first float32 of the first tensor, in place (safetensors layout:
    8-byte header length, JSON header, then raw little-endian data)."""
    data = bytearray(safetensors_file.read_bytes())
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    offset = 8 + header_length + header[name]["data_offsets"][0]
    (value,) = struct.unpack("<f", data[offset : offset + 4])
    data[offset : offset + 4] = struct.pack("<f", value + 1.0)
    safetensors_file.write_bytes(bytes(data))


def test_a_golden_is_recorded_then_matched(correctness_suite: pytest.Pytester) -> None:
    common = ["-m", "cpu", "-k", "determinism and fp32", "--sdperf-profiles-file=profiles.toml", "--sdperf-golden-dir=golden"]
    first = correctness_suite.runpytest_subprocess(*common, "--sdperf-record-golden")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["cpu-fp32 determinism: passed: determinism: recorded golden *"])
    assert len(list((correctness_suite.path / "golden" / "cpu").glob("cpu-fp32--tiny-sd15--stack-*.json"))) == 1
    again = correctness_suite.runpytest_subprocess(*common)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["cpu-fp32 determinism: passed: determinism: matches golden cpu-fp32--tiny-sd15--*"])


def test_a_perturbed_weight_file_is_caught(correctness_suite: pytest.Pytester) -> None:
    model = correctness_suite.path / "model"
    subprocess.run([sys.executable, "-m", "sdperf.cli", "build-model", "tiny-sd15", "--out", str(model)],
                   check=True, capture_output=True, timeout=300)
    common = ["-m", "cpu", "-k", "determinism and fp32", "--sdperf-profiles-file=profiles.toml",
              "--sdperf-golden-dir=golden", f"--sdperf-model={model}"]
    correctness_suite.runpytest_subprocess(*common, "--sdperf-record-golden").assert_outcomes(passed=1)
    perturb_one_value(model / "unet" / "diffusion_pytorch_model.safetensors")
    result = correctness_suite.runpytest_subprocess(*common)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*determinism regression: the fixed-seed image changed from the golden * model weights changed*"])
    review = next(correctness_suite.path.rglob("cpu-fp32-determinism"))
    assert {p.name for p in review.iterdir()} == {"old.png", "new.png", "diff.png"}


def test_fidelity_of_each_recipe_against_fp32(correctness_suite: pytest.Pytester) -> None:
    # The shipped built-in workload: the one the recipes' PSNR floors were measured on.
    result = correctness_suite.runpytest_subprocess("-m", "cpu", "-k", "fidelity", "--sdperf-recipes=fp32,dpm_solver", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "cpu-dpm_solver fidelity: passed: fidelity vs cpu-fp32: PSNR * dB (promise: changes-image, floor 20 dB)",
        "skipped (cpu-fp32 fidelity): fp32 is the reference the other recipes are compared with",
    ])


def _check(recipe_fields: dict, images_dir: Path):
    """A CaseCheck of the cpu profile's built-in workload for a made-up recipe."""
    from sdperf.config.profiles import load_profiles
    from sdperf.config.recipes import REGISTRY, Recipe
    from sdperf.execution.cases import make_case
    from sdperf.models.store import ModelSpec
    from sdperf.pytest_plugin.checks import CaseCheck, GoldenPolicy
    from sdperf.storage.results import CaseResult

    profile = load_profiles()["cpu"]
    recipe = Recipe(name="probe", summary="test only", profiles=("cpu",), transforms=("dpm_solver",), **recipe_fields)
    case = make_case(profile, recipe, ModelSpec("tiny-sd15"), {"timeout_s": 300})
    reference = make_case(profile, REGISTRY["fp32"], ModelSpec("tiny-sd15"), {"timeout_s": 300})
    result = CaseResult(case.id, "t", "cpu", "probe", "tiny-sd15", kind="fidelity")
    return CaseCheck(case, result, recipe, reference, images_dir, False, GoldenPolicy(Path("."), "cpu", False))


def test_a_recipe_below_its_psnr_floor_fails(tmp_path: Path) -> None:
    check = _check({"fidelity": "changes-image", "min_psnr_db": 99.0, "fidelity_evidence": "test"}, tmp_path)
    with pytest.raises(pytest.fail.Exception, match="below its floor of 99 dB"):
        check.fidelity()


def test_a_recipe_that_breaks_its_bit_exact_promise_fails(tmp_path: Path) -> None:
    check = _check({"fidelity": "bit-exact"}, tmp_path)
    with pytest.raises(pytest.fail.Exception, match="promises a bit-exact image but differs from cpu-fp32"):
        check.fidelity()


@pytest.mark.parametrize("profile", ["cpu", "pi4", "pi5", "sapphire_rapids"])
def test_shipped_goldens_hold_for_every_cpu_profile(pytester: pytest.Pytester, profile: str) -> None:
    """CI runs every recipe's correctness checks on the built-in model; where the repository
    holds a golden for this host's stack and CPU kernels, the image must match it."""
    pytester.makepyfile(test_correctness=CORRECTNESS_TESTS)
    emulate = [] if profile == "cpu" else [f"--sdperf-profile={profile}"]
    result = pytester.runpytest_subprocess(
        "-m", profile, f"--sdperf-golden-dir={REPO / 'baselines' / 'golden'}", *emulate,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) >= 1
    # Each golden shipped for this profile, these pixel packages and this CPU's kernels is found
    # and compared (a golden that is never found passes with a note: it proves nothing).
    for stem in shipped_goldens_for_this_host(profile):
        result.stdout.fnmatch_lines([f"*determinism: matches golden {stem}.json*"])


def _this_host() -> tuple[str, str]:
    """(torch's CPU kernel set, digest of the installed pixel packages), from a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", "import torch; from sdperf.common.packages import package_versions; "
         "from sdperf.storage.goldens import stack_digest; "
         "print(torch.backends.cpu.get_cpu_capability(), stack_digest(package_versions()))"],
        check=True, capture_output=True, text=True, timeout=300,
    )
    capability, stack = done.stdout.split()
    return capability, stack


def shipped_goldens_for_this_host(profile: str) -> list[str]:
    capability, stack = _this_host()
    folder = REPO / "baselines" / "golden" / ("cpu" if profile == "cpu" else f"emulated-{profile}")
    return sorted(path.stem for path in folder.glob(f"*--stack-{stack}--{capability}.json"))


def test_goldens_are_shipped_for_this_hosts_kernels_and_stack() -> None:
    # Recorded on AVX-512 and AVX2 hosts for the pinned stack: a fresh clone compares, on either.
    assert shipped_goldens_for_this_host("cpu"), f"no golden for {_this_host()} in baselines/golden/cpu"

"""The profile table: shipped data is valid, and bad files are refused with where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdperf.config.profiles import PROFILE_NAMES, ProfileError, load_profiles

SHIPPED = load_profiles()


def test_shipped_file_defines_every_profile_with_its_report_workload() -> None:
    assert set(SHIPPED) == set(PROFILE_NAMES)
    pi5 = SHIPPED["pi5"]
    assert (pi5.workload.height, pi5.workload.width, pi5.workload.steps) == (400, 400, 31)
    assert pi5.workload.prompt == "a red fox in space painted by Monet"
    assert pi5.env == {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"}
    xeon = SHIPPED["sapphire_rapids"]
    assert (xeon.workload.height, xeon.workload.steps, xeon.real.rounds, xeon.real.warmup) == (512, 20, 10, 1)
    sd3 = SHIPPED["cuda_lowvram"]
    assert (sd3.workload.height, sd3.workload.steps, sd3.workload.guidance) == (1024, 28, 3.5)
    assert sd3.workload.seed == 123456789012 and sd3.pipeline == "StableDiffusion3Pipeline"


def test_builtin_workload_keeps_the_shape_of_work() -> None:
    for profile in SHIPPED.values():
        real, small = profile.workload, profile.builtin_workload
        assert (small.prompt, small.steps, small.seed) == (real.prompt, real.steps, real.seed)
        assert small.height <= real.height


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
schema = 1
[profiles.cpu]
description = "x"
pipeline = "StableDiffusionPipeline"
builtin_model = "tiny-sd15"
[profiles.cpu.workload]
prompt = "p"
height = {height}
width = 64
steps = 2
[profiles.cpu.real]
rounds = 1
warmup = 0
timeout_s = 10
[profiles.cpu.builtin]
rounds = 1
warmup = 0
timeout_s = 10
{extra}
"""


def test_minimal_file_loads(tmp_path: Path) -> None:
    profiles = load_profiles(_write(tmp_path, MINIMAL.format(height=64, extra="")))
    assert profiles["cpu"].builtin_workload.height == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schema = 1\n[profiles.cpu\n", "is not valid TOML"),
        ("schema = 2\n", "has schema=2; this sdperf reads schema 1"),
        ("schema = 1\n[profiles.pi6]\n", "unknown profile(s) pi6; known: pi4, pi5, sapphire_rapids, cuda_lowvram, cpu"),
        (MINIMAL.format(height=100, extra=""), "profiles.cpu: workload height=100 must be a positive multiple of 8"),
        (MINIMAL.format(height=64, extra="[profiles.cpu.env]\nOMP_NUM_THREADS = 4\n"), "env.OMP_NUM_THREADS = 4 must be a string"),
        (MINIMAL.format(height=64, extra="[profiles.cpu.fast]\n"), "unknown key(s) fast"),
        (MINIMAL.replace('builtin_model = "tiny-sd15"\n', "").format(height=64, extra=""), "missing required key 'builtin_model'"),
        (MINIMAL.format(height=64, extra="[profiles.cpu.verdict]\nthreshold = 5\n"),
         "verdict threshold=5 must be a fraction between 0 and 1"),
        (MINIMAL.format(height=64, extra="[profiles.cpu.verdict]\nsession_noise = -0.1\n"),
         "verdict session_noise=-0.1 must be a fraction >= 0"),
        (MINIMAL.format(height=64, extra="[profiles.cpu.verdict]\nthreshhold = 0.1\n"), "unknown key(s) threshhold"),
    ],
)
def test_malformed_file_names_file_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as error:
        load_profiles(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profiles(tmp_path / "absent.toml")


def test_plugin_reports_a_malformed_profile_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", profiles="schema = 1\n[profiles.cpu\n")
    result = pytester.runpytest("--collect-only", "--sdperf-profiles-file=profiles.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sdperf-profiles-file: profile file *profiles.toml* is not valid TOML*"])

"""A/B runs of two dependency locks: `sdperf ab` and `--sdperf-ab`.

The fast tests cover the parts on fake data; a lock that cannot install (one bad
pin) builds a real environment. The A/B runs of real environments are in
tests/test_culprit.py, whose every search starts with one: a HEAD one tqdm version
older passes, and one with a planted slowdown is caught and traced to its package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdperf.config.profiles import VerdictPolicy
from sdperf.execution.environments import (
    ROOT,
    lock_environment_name,
    package_changes,
    prune_lock_environments,
)
from sdperf.judging import verdicts as judge
from sdperf.judging.images import compare_images
from sdperf.storage.baselines import promotion_refusals
from sdperf.storage.results import CaseResult

LOCK = ROOT / "constraints.txt"


# --- fake data -------------------------------------------------------------------------------


def _png(path: Path, value: int) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), (value, value, value)).save(path)
    return path


def test_images_identical_changed_or_nondeterministic(tmp_path: Path):
    same = [{"image_sha256": "a" * 64}] * 3
    found = compare_images(same, same, None, None, tmp_path / "review")
    assert found["outcome"] == "identical"

    a_png, b_png = _png(tmp_path / "a.png", 100), _png(tmp_path / "b.png", 110)
    changed = compare_images(same, [{"image_sha256": "b" * 64}], a_png, b_png, tmp_path / "review")
    assert changed["outcome"] == "changed"
    assert changed["psnr_db"] == pytest.approx(20 * 2.4065 - 20, abs=0.1)  # 10 log10(255^2 / 10^2)
    assert (tmp_path / "review" / "diff.png").is_file()
    assert "bbbbbbbbbbbb where A drew aaaaaaaaaaaa" in changed["detail"]

    wobbly = [{"image_sha256": "a" * 64}, {"image_sha256": "c" * 64}]
    assert compare_images(wobbly, same, None, None, tmp_path / "r2")["outcome"] == "nondeterministic"
    assert compare_images(same, wobbly, None, None, tmp_path / "r3")["outcome"] == "changed"


def test_package_changes_name_each_difference():
    a = {"tqdm": "4.70.1", "torch": "2.13.0", "gone": "1.0"}
    b = {"tqdm": "4.70.0", "torch": "2.13.0", "new-one": "2.0"}
    assert package_changes(a, b) == ["-gone 1.0", "+new-one 2.0", "tqdm 4.70.1 -> 4.70.0"]


def test_uv_installs_from_the_sources_pip_is_configured_with():
    from sdperf.execution.installer import parse_pip_config

    listing = "\n".join([
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
        "global.find-links='/srv/global-wheels'",
        "install.index-url='https://mirror.example/simple'",
        ":env:.find-links='/opt/wheels'",
        ":env:.default-timeout='180'",
    ])
    assert parse_pip_config(listing) == {
        "constraint": ["/etc/xdg/pip/constraints.txt"],
        "extra-index-url": ["file:///opt/pypi/simple", "file:///opt/pypi-more/simple"],
        "find-links": ["/opt/wheels"],  # PIP_FIND_LINKS wins over the file, as in pip
        "index-url": ["https://mirror.example/simple"],
    }


def test_pip_sources_come_from_this_pip_and_none_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from sdperf.execution.installer import pip_sources, uv_binary

    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/wheels-a /srv/wheels-b")
    options = pip_sources(sys.executable)
    assert options[:2] == ["--index-strategy", "unsafe-best-match"]
    assert "--find-links /srv/wheels-a --find-links /srv/wheels-b" in " ".join(options)
    # A uv environment has no pip unless asked for one.
    subprocess.run([uv_binary(), "venv", "--quiet", "--python", sys.executable, str(tmp_path / "bare")], check=True)
    assert pip_sources(str(tmp_path / "bare" / "bin" / "python")) == ["--index-strategy", "unsafe-best-match"]


def test_an_environment_is_built_with_every_module_compiled(tmp_path: Path):
    # A worker that compiles and writes bytecode keeps about 20 MiB more resident than the ones
    # after it: a new HEAD environment against a reused BASE looked hungrier (CI, +6.2%).
    from testonly_wheels import build_wheel

    from sdperf.execution.installer import build_environment

    wheel = build_wheel(tmp_path / "wheels", "sdperf-testonly-compiled", "1.0",
                        {"compiled_pkg/__init__.py": b"", "compiled_pkg/never_imported.py": b"VALUE = 1\n"})
    python = build_environment(tmp_path / "env", [[str(wheel)]])
    package = next((tmp_path / "env" / "lib").glob("python3*/site-packages/compiled_pkg"))
    assert python.exists()
    for module in ("__init__", "never_imported"):
        assert (package / "__pycache__" / f"{module}.{sys.implementation.cache_tag}.pyc").is_file(), module


def test_lock_environment_follows_content(tmp_path: Path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("tqdm==4.70.1\n")
    second.write_text("tqdm==4.70.1\n")
    assert lock_environment_name(first) == lock_environment_name(second)
    second.write_text("tqdm==4.70.0\n")
    assert lock_environment_name(first) != lock_environment_name(second)


def test_prune_keeps_the_most_recently_used_lock_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import os

    monkeypatch.setenv("SDPERF_CACHE", str(tmp_path))
    for age, name in enumerate(["lock-new", "lock-old", "lock-older", "ipex"]):
        folder = tmp_path / "envs" / name
        folder.mkdir(parents=True)
        marker = folder / "sdperf-environment.json"
        marker.write_text("{}")
        os.utime(marker, (1e9 - age * 1000, 1e9 - age * 1000))
    (tmp_path / "envs" / "lock-half-built").mkdir()  # no marker: the first to go
    removed = prune_lock_environments(keep=1)
    assert sorted(path.name for path in removed) == ["lock-half-built", "lock-old", "lock-older"]
    assert sorted(path.name for path in (tmp_path / "envs").iterdir() if path.is_dir()) == ["ipex", "lock-new"]


def _ab_result(a: list[float], b: list[float], steps_a=(), steps_b=(), rss_a=1e9, rss_b=1e9) -> CaseResult:
    result = CaseResult(case_id="cpu-fp32", test="t", profile="cpu", recipe="fp32", model="tiny-sd15")
    result.control_latencies_s, result.parent_latencies_s = list(a), list(b)
    result.control_rounds = [{"step_s": list(steps_a), "peak_rss_bytes": rss_a + i} for i in range(len(a))]
    result.rounds = [{"step_s": list(steps_b), "peak_rss_bytes": rss_b + i} for i in range(len(b))]
    return result


def test_side_a_verdicts_pair_rounds_or_fall_back_to_steps():
    policy = VerdictPolicy(min_rounds=5)
    a = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97]
    paired = judge.against_side_a(_ab_result(a, [x * 1.3 for x in a]), policy)
    assert paired["latency"].design == "paired" and paired["latency"].outcome == "slower"
    assert paired["peak_rss_bytes"].outcome == "same"
    # One round a side (a Pi image): every step is a sample.
    steps = [0.1 + 0.001 * i for i in range(30)]
    one = judge.against_side_a(_ab_result([3.0], [3.9], steps, [s * 1.3 for s in steps]), policy)
    assert one["latency"].samples == "steps" and one["latency"].outcome == "slower"
    hungry = judge.against_side_a(_ab_result(a, a, rss_b=1.5e9), policy)
    assert hungry["peak_rss_bytes"].outcome == "slower"


def test_an_ab_run_is_never_promoted():
    document = {"sdperf": {"ab": {"a": {}, "b": {}}, "cases": [{"kind": "latency", "status": "passed"}]},
                "benchmarks": [{}]}
    assert any("A/B run" in reason for reason in promotion_refusals(document))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("only-one.txt", "give two lock files, BASE,HEAD"),
        ("{lock},missing.txt", "lock file 'missing.txt' does not exist"),
    ],
)
def test_bad_ab_option_names_the_value(latency_suite: pytest.Pytester, value: str, message: str):
    result = latency_suite.runpytest("--sdperf-ab", value.format(lock=LOCK), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--sdperf-ab*{message}*"])


def test_ab_and_interleave_exclude_each_other(latency_suite: pytest.Pytester):
    result = latency_suite.runpytest(f"--sdperf-ab={LOCK},{LOCK}", "--sdperf-interleave", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sdperf-ab and --sdperf-interleave*give one*"])


def test_sdperf_ab_refuses_a_missing_lock(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "ab", str(LOCK), str(tmp_path / "nope.txt")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "nope.txt' does not exist" in done.stderr


# --- real environments -------------------------------------------------------------------------


def test_a_lock_that_cannot_be_installed_fails_its_cases_with_the_reason(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SDPERF_CACHE", str(latency_suite.path / "cache"))
    # One pin is enough to fail: uv stops at resolution, without installing the stack first.
    bad = latency_suite.path / "bad-lock.txt"
    bad.write_text("tqdm==0.0.0.999\n")
    # The bad lock as A: it fails before any good environment is built.
    result = latency_suite.runpytest(
        f"--sdperf-ab={bad},{LOCK}", "--sdperf-profile", "cpu", "--sdperf-recipes", "fp32", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=1, skipped=3)  # failed in set-up, where the environments are made
    result.stdout.fnmatch_lines(["*cpu-fp32*creating the environment for lock*bad-lock.txt* failed*uv pip install*"])
    from sdperf.execution.environments import environment_python

    half_built = latency_suite.path / "cache" / "envs" / lock_environment_name(bad)
    assert (half_built / "bin" / "python").exists()
    assert environment_python(lock_environment_name(bad)) is None  # never used

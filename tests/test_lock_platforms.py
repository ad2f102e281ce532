"""The committed lock installs on every platform the profiles run on: each pinned version has
a wheel for x86_64 and aarch64 Linux (glibc 2.36: Debian bookworm, which Raspberry Pi OS is)
and for Python 3.11 to 3.13. uv resolves it for each target without installing anything, from
the sources pip is configured with; a package with no wheel there is named, with uv's hint of
the platforms it has wheels for."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from sdperf.execution.environments import ROOT
from sdperf.execution.installer import pip_sources, uv_binary

PLATFORMS = ("x86_64-manylinux_2_36", "aarch64-manylinux_2_36")
PYTHONS = ("3.11", "3.12", "3.13")


def _resolve(lock: str, platform: str, python: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [uv_binary(), "pip", "compile", "--quiet", "--no-header", "--no-deps", "--only-binary", ":all:",
         "--python-platform", platform, "--python-version", python, *pip_sources(sys.executable),
         lock, "-o", "/dev/null"],
        capture_output=True, text=True, timeout=600,
    )


def _failures(lock: str) -> list[str]:
    targets = [(platform, python) for platform in PLATFORMS for python in PYTHONS]
    with ThreadPoolExecutor(len(targets)) as pool:  # network-bound: uv fetches each index page once
        done = list(pool.map(lambda target: _resolve(lock, *target), targets))
    return [f"{platform}, Python {python}: {result.stderr.strip()}"
            for (platform, python), result in zip(targets, done) if result.returncode != 0]


def test_every_pinned_version_has_a_wheel_on_every_platform_the_profiles_run_on():
    failures = _failures(str(ROOT / "constraints.txt"))
    assert not failures, "\n\n".join(failures)


def test_a_pin_without_a_wheel_there_is_named(tmp_path):
    # openvino-tokenizers 2026.4.1.0 has aarch64 wheels for glibc 2.31 and later only: fine on bookworm,
    # missing on an older glibc. The check must see platform tags, not only versions.
    lock = tmp_path / "lock.txt"
    lock.write_text("openvino-tokenizers==2026.4.1.0\n")
    done = _resolve(str(lock), "aarch64-manylinux_2_28", "3.11")
    assert done.returncode != 0
    assert "openvino-tokenizers" in done.stderr and "manylinux_2_31_aarch64" in done.stderr
    assert _resolve(str(lock), "aarch64-manylinux_2_36", "3.11").returncode == 0

"""The committed lock installs on every platform the profiles run on: each pinned version has
a wheel for x86_64 and aarch64 Linux (glibc 2.36: Debian bookworm, which Raspberry Pi OS is)
and for Python 3.11 to 3.13. uv resolves it for each target without installing anything, from
the sources pip is configured with; a package with no wheel there is named, with uv's hint of
the platforms it has wheels for."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

from sdperf.execution.environments import ROOT
from sdperf.execution.installer import pip_sources, uv_binary

PLATFORMS = ("x86_64-manylinux_2_36", "aarch64-manylinux_2_36")
PYTHONS = ("3.11", "3.12", "3.13")


@cache
def _sources() -> tuple[str, ...]:
    return tuple(pip_sources(sys.executable))  # pip's start-up is most of a resolution's second


def _resolve(lock: str, platform: str, python: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [uv_binary(), "pip", "compile", "--quiet", "--no-header", "--no-deps", "--only-binary", ":all:",
         "--python-platform", platform, "--python-version", python,
         # This interpreter runs uv's resolver for the target version; without it uv looks for (and
         # downloads) an interpreter of that version, seconds per target.
         "--python", sys.executable, "--no-python-downloads", *_sources(),
         lock, "-o", "/dev/null"],
        capture_output=True, text=True, timeout=600,
    )


def _failures(lock: str) -> list[str]:
    targets = [(platform, python) for platform in PLATFORMS for python in PYTHONS]
    # One after another: half a second each from uv's cache; six at once wait on its lock (12 s here).
    done = [_resolve(lock, *target) for target in targets]
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

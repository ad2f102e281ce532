"""The `sdperf` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys


def _sdperf(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sdperf.cli", *arguments], capture_output=True, text=True, timeout=300
    )


def test_doctor_audits_a_worker_started_with_the_profile_settings() -> None:
    result = _sdperf("doctor", "--profile", "pi5")
    assert result.returncode in (0, 1), result.stderr
    assert "profile: pi5 (requested)" in result.stdout
    # The Pi 5 profile sets OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=4; torch caps the
    # latter at the core count, which the doctor must say on a host with fewer than 4 cores.
    assert "pools: openblas 1, openmp " in result.stdout
    assert "[omp-num-threads-unset]" not in result.stdout
    if (os.cpu_count() or 1) >= 4:
        assert "worker: torch 4 threads" in result.stdout
    else:
        assert "[thread-variable-not-honoured]: OMP_NUM_THREADS=4 but torch in the worker runs" in result.stdout


def test_doctor_flags_unset_thread_variables_of_the_generic_profile() -> None:
    result = _sdperf("doctor", "--profile", "cpu")
    assert "[omp-num-threads-unset]" in result.stdout
    assert "fix:" in result.stdout


def test_doctor_refuses_an_unknown_profile() -> None:
    result = _sdperf("doctor", "--profile", "pi6")
    assert result.returncode == 2
    assert "profile 'pi6' is unknown; known: pi4, pi5, sapphire_rapids, cuda_lowvram, cpu" in result.stderr


def test_build_model_refuses_an_unknown_name() -> None:
    result = _sdperf("build-model", "tiny-sdxl")
    assert result.returncode == 2
    assert "'tiny-sdxl' is not built in; built-in: tiny-sd15, tiny-sd3" in result.stderr


def test_doctor_reads_a_throttled_pi_under_host_root(tmp_path) -> None:
    from test_profile_selection import fake_pi5

    root = fake_pi5(tmp_path / "root", throttled="0x50005")
    result = _sdperf("doctor", "--host-root", str(root))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "profile: pi5 (detected)" in result.stdout
    assert "error [pi-under-voltage]" in result.stdout and "5 V 5 A" in result.stdout


def test_recipes_of_an_unknown_profile_is_an_error_naming_the_known_ones() -> None:
    # It printed nothing and exited 0.
    result = _sdperf("recipes", "--profile", "pi6")
    assert result.returncode == 2 and result.stdout == ""
    assert "--profile: profile 'pi6' is unknown; known: cpu, pi5, pi4, sapphire_rapids, cuda_lowvram" in result.stderr


def test_python_dash_m_sdperf_is_the_sdperf_command() -> None:
    done = subprocess.run([sys.executable, "-m", "sdperf", "recipes", "--profile", "pi5"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "omp4_openblas1" in done.stdout

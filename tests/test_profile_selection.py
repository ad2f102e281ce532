"""Profile selection on a (fake) Raspberry Pi 5, invalid results, and storage kept apart per profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SuiteRun

THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"


def fake_pi5(root: Path, throttled: str = "0x0", mhz: int = 2400) -> Path:
    """/proc and /sys of a Raspberry Pi 5 as far as sdperf reads them."""
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/compatible").write_bytes(b"raspberrypi,5-model-b\0brcm,bcm2712\0")
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    cpus = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n" for i in range(4))
    (root / "proc/cpuinfo").write_text(cpus + "Revision\t: d04170\nModel\t: Raspberry Pi 5 Model B Rev 1.0\n")
    (root / "proc/meminfo").write_text("MemTotal:        8245360 kB\n")
    (root / THROTTLED).parent.mkdir(parents=True)
    (root / THROTTLED).write_text(throttled + "\n")
    for cpu in range(4):
        freq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text(f"{mhz * 1000}\n")
        (freq / "cpuinfo_max_freq").write_text("2400000\n")
        (freq / "scaling_governor").write_text("performance\n")
    return root


# Changes the fake Pi's state after the first timed round, as a real Pi would mid-run.
MID_CASE = """
import os
from pathlib import Path

def pytest_sdperf_round_done(case, round_index, reply):
    root = Path(os.environ["FAKE_ROOT"])
    if round_index == 0 and os.environ.get("MAKE_UNDERVOLTAGE"):
        (root / "{throttled}").write_text("0x50005\\n")
    if round_index == 0 and os.environ.get("SLOW_CLOCK"):
        for cpu in range(4):
            (root / f"sys/devices/system/cpu/cpu{{cpu}}/cpufreq/scaling_cur_freq").write_text("1500000\\n")
""".format(throttled=THROTTLED)


@pytest.fixture
def pi5_suite(latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    root = fake_pi5(latency_suite.path / "fake-root")
    monkeypatch.setenv("FAKE_ROOT", str(root))
    latency_suite.makeconftest(MID_CASE)
    return latency_suite


def _run_pi5(suite: pytest.Pytester, *extra: str):
    return suite.runpytest(
        "-m", "pi5", "--sdperf-recipes=fp32", "--sdperf-host-root=fake-root", "--sdperf-rounds=2", "--sdperf-warmup=0",
        "--sdperf-workers=1", "--benchmark-autosave", "--benchmark-json=run.json", *extra,
    )


def test_pi5_marker_runs_the_pi5_workload_with_pi5_settings_on_a_pi5(pi5_suite: pytest.Pytester) -> None:
    result = _run_pi5(pi5_suite)
    result.assert_outcomes(passed=1)
    saved = json.loads((pi5_suite.path / "run.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_latency[pi5-fp32]"]
    extra = saved["benchmarks"][0]["extra_info"]
    environment = extra["load"]["audit"]["environment"]
    assert (environment["OMP_NUM_THREADS"], environment["OPENBLAS_NUM_THREADS"]) == ("4", "1")
    # The built-in scale of the Pi workload: same 31 steps (PNDM runs 32), smaller image.
    assert all(len(r["step_s"]) == 32 and r["image_shape"] == [1, 128, 128, 3] for r in extra["rounds"])
    assert extra["host_state"]["after"]["throttle"]["raw"] == 0
    assert saved["machine_info"]["sdperf"]["host"]["primary"] == "pi5"
    worker = saved["machine_info"]["sdperf"]["workers"]["pi5-fp32"]
    assert worker["environment"]["OMP_NUM_THREADS"] == "4" and "ATen/Parallel" in worker["parallel_info"]
    assert {pool["internal_api"] for pool in worker["threadpools"]} >= {"openmp"}
    # Saved with the Pi 5's runs, not with every Linux/CPython machine's.
    assert list((pi5_suite.path / ".benchmarks" / "pi5").rglob("*.json"))


@pytest.mark.parametrize(
    ("trigger", "reason"),
    [
        ("MAKE_UNDERVOLTAGE", "*invalid result, not saved: Raspberry Pi under-voltage, throttled at the end of the case*"),
        ("SLOW_CLOCK", "*invalid result, not saved: mean CPU frequency fell 38% during the case (2400 to 1500 MHz*"),
    ],
)
def test_throttled_or_slowed_case_is_invalid_and_not_saved(
    pi5_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, trigger: str, reason: str
) -> None:
    monkeypatch.setenv(trigger, "1")
    result = _run_pi5(pi5_suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([reason])
    saved = json.loads((pi5_suite.path / "run.json").read_text())
    assert saved["benchmarks"] == []
    [case] = saved["sdperf"]["cases"]
    assert case["status"] == "invalid" and len(case["rounds"]) == 2
    result.stdout.fnmatch_lines(["pi5-fp32 * invalid *"])


def test_emulated_runs_are_stored_apart_from_real_ones(pi5_emulated_run: SuiteRun, cpu_run: SuiteRun) -> None:
    pi5_emulated_run.lines().fnmatch_lines([
        "*cpu-fp32*: this run emulates pi5 (--sdperf-profile pi5) and runs only its cases; "
        "run without --sdperf-profile for this host's own cpu cases*",
    ])
    emulated_runs = [json.loads(p.read_text()) for p in (pi5_emulated_run.folder / ".benchmarks").rglob("*.json")]
    real_runs = [json.loads(p.read_text()) for p in (cpu_run.folder / ".benchmarks").rglob("*.json")]
    assert {p.parts[-3] for p in (pi5_emulated_run.folder / ".benchmarks").rglob("*.json")} == {"emulated-pi5"}
    # Its images were kept only while the checks needed them: no empty folder stays behind.
    assert not (pi5_emulated_run.folder / ".benchmarks" / "emulated-pi5" / "images").exists()
    assert {p.parts[-3] for p in (cpu_run.folder / ".benchmarks").rglob("*.json")} == {"cpu"}
    assert {b["name"] for run in emulated_runs for b in run["benchmarks"]} >= {"test_latency[pi5-fp32]"}
    assert all(b["name"].startswith("test_latency[pi5-") for run in emulated_runs for b in run["benchmarks"])
    assert all(b["name"].startswith("test_latency[cpu-") for run in real_runs for b in run["benchmarks"])
    assert emulated_runs[0]["machine_info"]["sdperf"]["emulated_profile"] == "pi5"
    assert real_runs[0]["machine_info"]["sdperf"]["emulated_profile"] is None


def test_pi5_compare_on_another_host_skips_naming_the_host(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest("-m", "pi5", "--sdperf-recipes=fp32", "--benchmark-compare", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*profile pi5 does not run here (host detected as cpu: *"])
    assert "no baseline for" not in result.stdout.str()  # nothing ran: the host's own baseline is beside the point


def test_host_root_that_is_not_a_folder_is_refused(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest("--collect-only", "--sdperf-host-root=/no/such/root")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sdperf-host-root: '/no/such/root' is not a folder; give the folder holding proc/ and sys/*"])

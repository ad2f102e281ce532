"""A worker that dies or hangs fails its own case, with the reason; the run goes on and saves."""

from __future__ import annotations

import json

import pytest

# Three benchmarks in one run. The conftest kills the first worker after its first
# timed round and freezes the second (SIGSTOP) so it hangs past the case timeout.
THREE_CASES = """
def test_a(sdperf_bench):
    sdperf_bench.latency()

def test_b(sdperf_bench):
    sdperf_bench.latency()

def test_c(sdperf_bench):
    sdperf_bench.latency()
"""

SABOTAGE = """
import os, signal

workers = []

def pytest_sdperf_worker_started(case, pid):
    workers.append(pid)

def pytest_sdperf_round_done(case, round_index, reply):
    if len(workers) == 1 and round_index == 0:
        os.kill(workers[-1], signal.SIGKILL)
    if len(workers) == 2 and round_index == 0:
        os.kill(workers[-1], signal.SIGSTOP)
"""


def test_killed_and_hung_cases_fail_alone_and_the_rest_is_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_CASES)
    pytester.makeconftest(SABOTAGE)
    result = pytester.runpytest(
        "-m", "cpu", "--sdperf-recipes=fp32", "--sdperf-rounds=3", "--sdperf-warmup=0", "--sdperf-workers=1",
        "--sdperf-timeout=20",
        "--benchmark-json=run.json", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*case cpu-fp32: worker was killed by signal SIGKILL (9)*during 'generate'*",
        "*case cpu-fp32: timed out after 20 s (case timeout) during 'generate'; worker killed*",
    ])
    saved = json.loads((pytester.path / "run.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_c[cpu-fp32]"]
    assert len(saved["benchmarks"][0]["stats"]["data"]) == 3
    statuses = {c["test"].split("::")[-1]: (c["status"], c["reason"]) for c in saved["sdperf"]["cases"]}
    assert statuses["test_a[cpu-fp32]"][0] == "failed" and "SIGKILL" in statuses["test_a[cpu-fp32]"][1]
    assert statuses["test_b[cpu-fp32]"][0] == "failed" and "timed out" in statuses["test_b[cpu-fp32]"][1]
    assert statuses["test_c[cpu-fp32]"] == ("passed", "")
    assert saved["machine_info"]["sdperf"]["host"]["primary"] == "cpu"
    assert len(saved["machine_info"]["sdperf"]["lock_sha256"] or "") in (0, 64)
    result.stdout.fnmatch_lines(["*sdperf results*", "cpu-fp32 failed: case cpu-fp32: worker was killed*"])


# Ctrl-C in the second case's first timed round, where the terminal's SIGINT would land:
# the first case is finished, the second has no sample yet.
CTRL_C_IN_FIRST_ROUND = """
first_rounds = []

def pytest_sdperf_round_done(case, round_index, reply):
    if round_index == 0:
        first_rounds.append(case)
    if len(first_rounds) == 2:
        raise KeyboardInterrupt
"""


def test_ctrl_c_in_a_first_round_stops_as_interrupted_and_keeps_the_finished_case(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_CASES)
    pytester.makeconftest(CTRL_C_IN_FIRST_ROUND)
    result = pytester.runpytest_subprocess(
        "-m", "cpu", "--sdperf-recipes=fp32", "--sdperf-rounds=2", "--sdperf-warmup=0", "--sdperf-workers=1",
        "--benchmark-json=run.json", "--benchmark-autosave", "--benchmark-storage=file://storage",
        "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()[-3000:]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "cpu-fp32 * unfinished *", "interrupted: only the cases that finished are saved*", "*KeyboardInterrupt*",
    ])
    saved = json.loads((pytester.path / "run.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_a[cpu-fp32]"]
    assert saved["sdperf"]["run"]["interrupted"] is True
    [stored] = (pytester.path / "storage").rglob("*.json")
    assert stored.name.endswith("_interrupted.json")
    assert [b["name"] for b in json.loads(stored.read_text())["benchmarks"]] == ["test_a[cpu-fp32]"]

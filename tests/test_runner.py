"""The parent side of a worker, against fake workers: crashes, kills and hangs become reasons."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest

from sdperf.common import protocol
from sdperf.config.profiles import RunSize, Workload
from sdperf.execution.bare_loop import BareLoop
from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, Worker, WorkerFailed
from sdperf.models.store import ModelSpec


def _case(timeout_s: float = 30.0, env: dict | None = None) -> Case:
    return Case(
        profile="cpu",
        recipe="fp32",
        model=ModelSpec(name="tiny-sd15"),
        workload=Workload(prompt="p", height=64, width=64, steps=2),
        run=RunSize(rounds=1, warmup=0, timeout_s=timeout_s),
        env=env or {},
    )


def _fake_python(tmp_path: Path, body: str) -> str:
    """A stand-in interpreter: runs `body` (Python) in place of `-m sdperf.worker ...`."""
    script = tmp_path / "fake_worker.py"
    script.write_text(body, encoding="utf-8")
    launcher = tmp_path / "fake-python"
    launcher.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {script} "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return str(launcher)


READY_THEN = """
import json, os, signal, sys, time
args = sys.argv[1:]
replies = int(args[args.index("--replies-fd") + 1])
os.write(replies, b'{{"event":"ready","pid":%d,"protocol":{protocol}}}\\n' % os.getpid())
{then}
"""


def _ready_then(then: str, protocol_version: int = protocol.PROTOCOL_VERSION) -> str:
    return READY_THEN.format(then=then, protocol=protocol_version)


def test_exit_code_and_output_tail_are_reported(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, _ready_then("print('cannot allocate'); sys.exit(3)"))
    with Worker(_case(), python=python) as worker, pytest.raises(WorkerFailed) as error:
        worker.start()
        worker.request("load", case={})
    message = str(error.value)
    assert "worker exited with code 3" in message
    assert "cannot allocate" in message


def test_signal_is_named_with_the_oom_hint(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, _ready_then("os.kill(os.getpid(), signal.SIGKILL)"))
    with Worker(_case(), python=python) as worker, pytest.raises(WorkerFailed) as error:
        worker.start()
        worker.request("load", case={})
    assert "killed by signal SIGKILL (9)" in str(error.value)
    assert "OOM killer" in str(error.value)


def test_hang_past_the_case_timeout_kills_the_worker(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, _ready_then("time.sleep(600)"))
    worker = Worker(_case(timeout_s=1.0), python=python)
    with worker, pytest.raises(WorkerFailed, match=r"timed out after 1 s \(case timeout\) during 'load'"):
        worker.start()
        worker.request("load", case={})
    assert worker.process.returncode == -9


def test_error_reply_carries_the_worker_traceback(tmp_path: Path) -> None:
    reply = '{"ok": false, "error": "ValueError: bad size", "traceback": "Traceback: line 1"}'
    then = f"os.read(int(args[args.index('--requests-fd') + 1]), 1000); os.write(replies, {reply!r}.encode() + b'\\n')"
    python = _fake_python(tmp_path, _ready_then(then + "; time.sleep(1)"))
    with Worker(_case(), python=python) as worker, pytest.raises(WorkerFailed) as error:
        worker.start()
        worker.request("load", case={})
    assert "ValueError: bad size" in str(error.value) and "Traceback: line 1" in str(error.value)


def test_missing_interpreter_is_a_clear_failure(tmp_path: Path) -> None:
    with Worker(_case(), python=str(tmp_path / "no-python")) as worker, pytest.raises(WorkerFailed, match="cannot start"):
        worker.start()


def test_worker_gets_the_case_environment_and_not_the_shells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("LD_PRELOAD", "/lib/leak.so")
    environ = _case(env={"OPENBLAS_NUM_THREADS": "1", "MALLOC_CONF": None}).worker_environment()
    assert "OMP_NUM_THREADS" not in environ and "LD_PRELOAD" not in environ
    assert environ["OPENBLAS_NUM_THREADS"] == "1" and "MALLOC_CONF" not in environ
    assert environ["HF_HUB_OFFLINE"] == "1"


def test_line_reader_keeps_partial_lines() -> None:
    reader = protocol.LineReader()
    assert reader.feed(b'{"a": 1}\n{"b"') == [{"a": 1}]
    assert reader.feed(b': 2}\n') == [{"b": 2}]


def test_a_worker_of_another_protocol_version_fails_naming_both_sides(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, _ready_then("time.sleep(600)", protocol_version=protocol.PROTOCOL_VERSION + 1))
    with Worker(_case(), python=python) as worker, pytest.raises(WorkerFailed) as error:
        worker.start()
    message = str(error.value)
    assert f"the worker ({python}) speaks protocol version {protocol.PROTOCOL_VERSION + 1}" in message
    assert f"this sdperf ({sys.executable}) speaks {protocol.PROTOCOL_VERSION}" in message
    assert worker.process.poll() is not None  # not left running


def test_one_deadline_bounds_every_worker_of_a_case(tmp_path: Path) -> None:
    # A rotated worker used to get the whole timeout again: a case could run its timeout many times over.
    deadline = Deadline(1.5)
    python = _fake_python(tmp_path, _ready_then("time.sleep(600)"))
    with Worker(_case(timeout_s=1.5), python=python, deadline=deadline) as first:
        first.start()
    time.sleep(1.6)
    started = time.monotonic()
    with Worker(_case(timeout_s=1.5), python=python, deadline=deadline) as second:
        with pytest.raises(WorkerFailed, match=r"timed out after 1.5 s \(case timeout\) during 'start'"):
            second.start()
    assert time.monotonic() - started < 1.0


def test_the_bare_loop_is_bound_by_the_case_deadline() -> None:
    # The harness's bare loop had no timeout at all: a hung one hung the run.
    with pytest.raises(WorkerFailed, match=r"bare loop: timed out after 0.2 s \(case timeout\) waiting for ready"):
        BareLoop(_case(), Deadline(0.2), python=sys.executable)


def test_workers_start_from_an_allow_list_and_record_what_they_got(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"OMP_WAIT_POLICY": "active", "KMP_BLOCKTIME": "0", "PYTORCH_TUNABLEOP_ENABLED": "1",
                        "PYTHONPATH": "/elsewhere", "LC_ALL": "C.UTF-8", "SDPERF_TESTONLY_SLOWDOWN": "0.2"}.items():
        monkeypatch.setenv(name, value)
    environ = _case(env={"OMP_NUM_THREADS": "1"}).worker_environment()
    for leaked in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "PYTORCH_TUNABLEOP_ENABLED", "PYTHONPATH"):
        assert leaked not in environ
    assert environ["LC_ALL"] == "C.UTF-8" and environ["SDPERF_TESTONLY_SLOWDOWN"] == "0.2"
    assert environ["PATH"] and environ["OMP_NUM_THREADS"] == "1"
    named = dataclasses.replace(_case(), inherit_env=("PYTHONPATH",)).worker_environment()
    assert named["PYTHONPATH"] == "/elsewhere"
    # The worker's audit records everything it started with.
    with Worker(_case(env={"OMP_NUM_THREADS": "1"})) as worker:
        worker.start()
        audit = worker.request("audit")["audit"]
    assert audit["environment"]["OMP_NUM_THREADS"] == "1" and "OMP_WAIT_POLICY" not in audit["environment"]
    assert audit["environment"]["LC_ALL"] == "C.UTF-8"

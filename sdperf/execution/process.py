"""Parent side of a worker: start it with the case's settings, talk to it, bound it in time.

The parent blocks in `select` while the worker computes (a spinning parent steals
a core from the benchmark), enforces one deadline for the whole case, and turns
a crash, a kill or a hang into a `WorkerFailed` that names what happened.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdperf.common import protocol
from sdperf.execution.cases import Case

STDERR_TAIL_LINES = 30


class WorkerFailed(RuntimeError):
    """The worker crashed, was killed, hung past the case timeout, or reported an error."""


class Deadline:
    """One time limit for a whole case, shared by every process the case starts (rotated
    workers, the control, the bare loop): a case never runs longer than its timeout."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return self.at - self._clock()

    def describe(self) -> str:
        return f"timed out after {self.seconds:g} s (case timeout)"


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "?"
        hint = " (the kernel's OOM killer sends this; check `dmesg`)" if number == signal.SIGKILL else ""
        return f"was killed by signal {name} ({number}){hint}"
    return f"exited with code {returncode}"


class Worker:
    """One worker process serving one case."""

    def __init__(
        self,
        case: Case,
        python: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        progress_every_s: float = 5.0,
        deadline: Deadline | None = None,
    ) -> None:
        self.case = case
        self.python = python
        self.on_event = on_event
        self.progress_every_s = progress_every_s
        self.process: subprocess.Popen | None = None
        # Shared with the case's other processes; a worker started alone gets the case's whole timeout.
        self.deadline = deadline
        self.last_event: dict[str, Any] | None = None
        self._reader = protocol.LineReader()
        self._pending: list[dict[str, Any]] = []
        self._log = tempfile.NamedTemporaryFile(prefix=f"sdperf-{case.id}-", suffix=".log", delete=False)

    @property
    def log_path(self) -> Path:
        return Path(self._log.name)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _interpreter(self) -> str:
        """This Python, or the one of the recipe's own environment (IPEX needs its torch)."""
        if self.python:
            return self.python
        if self.case.python_env:
            from sdperf.execution.environments import environment_python

            found = environment_python(self.case.python_env)
            if found is None:
                raise WorkerFailed(
                    f"case {self.case.id}: environment {self.case.python_env!r} does not exist; "
                    f"create it with: sdperf env create {self.case.python_env}"
                )
            return str(found)
        return sys.executable

    def start(self) -> dict[str, Any]:
        if self.deadline is None:
            self.deadline = Deadline(self.case.run.timeout_s)
        interpreter = self._interpreter()
        request_read, self._requests = os.pipe()
        self._replies, reply_write = os.pipe()
        command = [
            *self.case.command_prefix,
            interpreter,
            "-m",
            "sdperf.worker",
            "--requests-fd",
            str(request_read),
            "--replies-fd",
            str(reply_write),
            "--progress-every",
            str(self.progress_every_s),
        ]
        try:
            self.process = subprocess.Popen(
                command,
                env=self.case.worker_environment(),
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Own process group: a timeout kills the worker and anything it spawned.
                start_new_session=True,
            )
        except OSError as error:
            raise WorkerFailed(f"case {self.case.id}: cannot start worker {command[0]!r}: {error}") from None
        finally:
            os.close(request_read)
            os.close(reply_write)
        ready = self._receive("start")
        theirs = ready.get("protocol")
        if theirs != protocol.PROTOCOL_VERSION:
            # Lock and IPEX environments run workers under other interpreters, with their own sdperf.
            self._kill()
            self.process.wait()
            raise WorkerFailed(
                f"case {self.case.id}: the worker ({interpreter}) speaks protocol version {theirs}, this sdperf "
                f"({sys.executable}) speaks {protocol.PROTOCOL_VERSION}; reinstall this sdperf into that environment "
                "(`sdperf env create NAME`, or delete a lock environment under $SDPERF_CACHE/envs to rebuild it)"
            )
        return ready

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            protocol.write_message(self._requests, {"op": op, **fields})
        except BrokenPipeError:
            self._fail(f"while sending {op!r}", self._wait_exit())
        return self._receive(op)

    def _receive(self, what: str) -> dict[str, Any]:
        with selectors.DefaultSelector() as selector:
            selector.register(self._replies, selectors.EVENT_READ)
            while True:
                while self._pending:
                    message = self._pending.pop(0)
                    if "event" in message and message["event"] != "ready":
                        self.last_event = message
                        if self.on_event:
                            self.on_event(message)
                        continue
                    if message.get("ok") is False:
                        raise WorkerFailed(
                            f"case {self.case.id}: worker reported an error during {what!r}: {message['error']}\n"
                            f"{message.get('traceback', '')}"
                        )
                    return message
                remaining = self.deadline.remaining()
                if remaining <= 0:
                    self._timeout(what)
                if selector.select(timeout=remaining):
                    chunk = os.read(self._replies, 65536)
                    if not chunk:
                        self._fail(f"during {what!r}", self._wait_exit())
                    self._pending.extend(self._reader.feed(chunk))

    def _wait_exit(self) -> int | None:
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            return self.process.wait()

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _timeout(self, what: str) -> None:
        self._kill()
        self.process.wait()
        progress = f"; last progress: {self.last_event}" if self.last_event else ""
        raise WorkerFailed(
            f"case {self.case.id}: {self.deadline.describe()} during {what!r}; "
            f"worker killed{progress}\n{self.stderr_tail()}"
        )

    def _fail(self, when: str, returncode: int | None) -> None:
        raise WorkerFailed(
            f"case {self.case.id}: worker {_describe_exit(returncode)} {when}\n{self.stderr_tail()}"
        )

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(worker log unavailable)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of worker output ({self.log_path}) ---\n" + "\n".join(tail)

    def close(self) -> None:
        """Ask the worker to stop; kill it if it does not. Keeps the log only on failure."""
        if self.process is None:
            self._log.close()
            self.log_path.unlink(missing_ok=True)
            return
        if self.process.poll() is None:
            try:
                protocol.write_message(self._requests, {"op": "shutdown"})
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._kill()
                self.process.wait()
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        if self.process.returncode == 0:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

"""Parent side of the bare-loop reference used to measure the suite's own overhead."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile

from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, WorkerFailed

_PREFIX = b"sdperf-bare "


class BareLoop:
    """A process running the same model and workload in a plain perf_counter loop, bound by
    the case's deadline like every other process of the case."""

    def __init__(self, case: Case, deadline: Deadline, python: str = sys.executable) -> None:
        self.deadline = deadline
        self._log = tempfile.TemporaryFile()
        self._buffer = b""
        self.process = subprocess.Popen(
            [python, "-m", "sdperf.worker.bare_loop", json.dumps(case.to_json())],
            env=case.worker_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self._expect("ready")

    def _line(self, what: str) -> bytes | None:
        """The next line of output, None at end of file; killed at the case's deadline."""
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = self.deadline.remaining()
                if remaining <= 0:
                    self.process.kill()
                    self.process.wait()
                    raise WorkerFailed(f"bare loop: {self.deadline.describe()} waiting for {what}; killed")
                if selector.select(timeout=remaining):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        return None
                    self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _expect(self, what: str) -> str:
        while (line := self._line(what)) is not None:
            if line.startswith(_PREFIX):
                return line[len(_PREFIX):].decode().strip()
        self._log.seek(0)
        tail = self._log.read().decode("utf-8", "replace").splitlines()[-20:]
        raise WorkerFailed(f"bare loop exited with code {self.process.wait()} waiting for {what}:\n" + "\n".join(tail))

    def time_one(self) -> float:
        self.process.stdin.write(b"\n")
        self.process.stdin.flush()
        return float(self._expect("a timing"))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

"""Parent side of the bare-loop reference used to measure the suite's own overhead."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from sdperf.cases import Case
from sdperf.runner import WorkerFailed

_PREFIX = "sdperf-bare "


class BareLoop:
    """A process running the same model and workload in a plain perf_counter loop."""

    def __init__(self, case: Case, python: str = sys.executable) -> None:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [python, "-m", "sdperf.worker.bare_loop", json.dumps(case.to_json())],
            env=case.worker_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._expect("ready")

    def _expect(self, what: str) -> str:
        for line in self.process.stdout:
            if line.startswith(_PREFIX):
                return line[len(_PREFIX) :].strip()
        self._log.seek(0)
        tail = self._log.read().decode("utf-8", "replace").splitlines()[-20:]
        raise WorkerFailed(f"bare loop exited with code {self.process.wait()} waiting for {what}:\n" + "\n".join(tail))

    def time_one(self) -> float:
        self.process.stdin.write("\n")
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

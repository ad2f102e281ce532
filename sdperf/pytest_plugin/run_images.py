"""Every image a run drew, per case: what the correctness checks judge.

A benchmark's warm-ups and timed rounds already draw the case's fixed-seed image, in one or
more fresh workers; the checks judge those. A check draws an image only when no benchmark of
this run drew that case (`pytest -k determinism` alone), and then once per run: the control
image every fidelity check compares with is drawn by the first check that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, Worker
from sdperf.execution.workers import require_in_force


@dataclass
class DrawnImages:
    """The images of one case: who drew them, each with its worker, the first worker's load
    reply (audit, weight digest), the last image as PNG, and why drawing stopped early if it did."""

    source: str
    images: list[tuple[int, str]] = field(default_factory=list)  # (worker, image sha256), in drawing order
    load: dict[str, Any] = field(default_factory=dict)
    png: Path | None = None
    stopped: str | None = None

    @classmethod
    def from_benchmark(cls, source: str, warmups: Sequence[dict], rounds: Sequence[dict], load: dict[str, Any],
                       png: Path | None, stopped: str | None) -> DrawnImages:
        """A benchmark's images, each worker's warm-ups before its timed rounds."""
        ordered = sorted([(r["worker"], 0, i, r["image_sha256"]) for i, r in enumerate(warmups)]
                         + [(r["worker"], 1, i, r["image_sha256"]) for i, r in enumerate(rounds)])
        return cls(source, [(worker, digest) for worker, _, _, digest in ordered], dict(load), png, stopped)


class RunImages:
    """The run's ledger of drawn images, by case id. PNGs live in the run's image folder and
    are removed at the end unless the user keeps images (--sdperf-save-images)."""

    def __init__(self, folder: Callable[[], Path], keep: bool) -> None:
        self._folder = folder
        self.keep = keep
        self._drawn: dict[str, DrawnImages] = {}
        self._transient: list[Path] = []

    def png_path(self, case: Case) -> Path:
        path = self._folder() / f"{case.id}.png"
        if not self.keep:
            self._transient.append(path)
        return path

    def record(self, case: Case, drawn: DrawnImages) -> None:
        self._drawn[case.id] = drawn

    def of(self, case: Case) -> DrawnImages | None:
        return self._drawn.get(case.id)

    def draw(self, case: Case, per_worker: Sequence[int], deadline: Deadline, source: str) -> DrawnImages:
        """Draw `case`'s image in fresh workers (`per_worker`: how many in each) and record them;
        the first worker's last image is saved as PNG. Raises WorkerFailed."""
        drawn = DrawnImages(source)
        for worker_index, count in enumerate(per_worker):
            with Worker(case, deadline=deadline) as worker:
                worker.start()
                loaded = worker.request("load", case=case.to_json())
                require_in_force(case, loaded)
                if worker_index == 0:
                    drawn.load = {key: value for key, value in loaded.items() if key != "ok"}
                for _ in range(count):
                    drawn.images.append((worker_index, worker.request("generate")["image_sha256"]))
                if worker_index == 0:
                    drawn.png = self.png_path(case)
                    worker.request("save_image", path=str(drawn.png))
        self.record(case, drawn)
        return drawn

    def discard(self) -> None:
        """Remove the PNGs drawn only for the checks."""
        for path in self._transient:
            path.unlink(missing_ok=True)
        self._transient.clear()

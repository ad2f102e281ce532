"""Correctness checks of a case: fixed-seed determinism against goldens, fidelity per recipe.

A dependency upgrade that changes the images must be caught as surely as one
that slows them down.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sdperf.config.recipes import Recipe
from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, Worker, WorkerFailed
from sdperf.execution.workers import require_in_force
from sdperf.judging.images import keep_for_review, psnr
from sdperf.storage.goldens import GoldenKey, load_golden, record_golden, stack_digest
from sdperf.storage.results import CaseResult, Status


@dataclass(frozen=True)
class GoldenPolicy:
    root: Path
    storage_key: str
    record: bool


def _generate(
    case: Case, count: int, png: Path | None, deadline: Deadline
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load `case` in a fresh worker and generate `count` images; the first is saved to `png`.
    `deadline` is the check's: its workers share the case timeout."""
    with Worker(case, deadline=deadline) as worker:
        worker.start()
        loaded = worker.request("load", case=case.to_json())
        require_in_force(case, loaded)
        replies = [
            worker.request("generate", save_png=str(png) if png and index == 0 else None) for index in range(count)
        ]
    return loaded, replies


class CaseCheck:
    """What a correctness test gets as `sdperf_check`."""

    def __init__(self, case: Case, result: CaseResult, recipe: Recipe, reference: Case,
                 images_dir: Path, keep_images: bool, golden: GoldenPolicy) -> None:
        self.case = case
        self.result = result
        self.recipe = recipe
        self.reference = reference
        self.images_dir = images_dir
        self.keep_images = keep_images
        self.golden = golden
        # One deadline for the check: every worker it starts shares the case timeout.
        self.deadline = Deadline(case.run.timeout_s)

    def _named(self, kind: str) -> None:
        self.result.kind = kind
        self.result.case_id = f"{self.case.id} {kind}"

    def _fail(self, message: str) -> None:
        self.result.move_to(Status.FAILED, message.splitlines()[0])
        pytest.fail(message, pytrace=False)

    def _workdir(self, check: str) -> Path:
        folder = self.images_dir / f"{self.case.id}-{check}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _done(self, folder: Path, note: str) -> None:
        self.result.move_to(Status.PASSED)
        self.result.notes.append(note)
        if not self.keep_images:
            shutil.rmtree(folder, ignore_errors=True)

    def determinism(self) -> None:
        """Same seed, same image: twice in one worker, in a fresh worker, and against the golden."""
        self._named("determinism")
        folder = self._workdir("determinism")
        new_png = folder / "new.png"
        try:
            loaded, (first, second) = _generate(self.case, 2, new_png, self.deadline)
            _, (third,) = _generate(self.case, 1, None, self.deadline)
        except WorkerFailed as error:
            self._fail(str(error))
        digest = first["image_sha256"]
        self.result.rounds = [first, second, third]
        if second["image_sha256"] != digest:
            self._fail(f"case {self.case.id}: two generations with one seed in one worker differ "
                       f"({digest[:12]} then {second['image_sha256'][:12]})")
        if third["image_sha256"] != digest:
            self._fail(f"case {self.case.id}: two fresh workers give different images for one seed "
                       f"({digest[:12]} and {third['image_sha256'][:12]})")
        audit = loaded["audit"]
        key = GoldenKey(self.golden.storage_key, self.case.id, self.case.model.name,
                        stack_digest(audit["packages"], self.recipe.needs.packages), audit["cpu_capability"])
        record_path, golden_png = key.paths(self.golden.root)
        if self.golden.record:
            record_golden(self.golden.root, key, digest, loaded["weights_sha256"], audit["packages"], new_png)
            return self._done(folder, f"determinism: recorded golden {record_path}")
        golden = load_golden(self.golden.root, key)
        if golden is None:
            return self._done(folder, f"determinism: same image in one worker and across workers ({digest[:12]}); "
                                      f"no golden for {key.stem()} in {self.golden.root} "
                                      "(record one on a trusted run with --sdperf-record-golden)")
        if golden.image_sha256 != digest:
            old, new, diff, db = keep_for_review(folder, golden_png, new_png)
            weights = ("weights unchanged" if golden.weights_sha256 == loaded["weights_sha256"]
                       else f"model weights changed ({golden.weights_sha256[:12]} to {loaded['weights_sha256'][:12]})")
            self._fail(f"case {self.case.id}: determinism regression: the fixed-seed image changed from the golden "
                       f"{golden.image_sha256[:12]} (recorded {golden.recorded_at}) to {digest[:12]}; {weights}; "
                       f"PSNR {db:.1f} dB; old {old}, new {new}, difference {diff}")
        self._done(folder, f"determinism: matches golden {record_path.name} ({digest[:12]})")

    def fidelity(self) -> None:
        """The recipe's image against the image of the profile's control recipe (fp32 on CPUs), within the recipe's promise."""
        self._named("fidelity")
        if self.recipe.name == self.reference.recipe:
            self.result.move_to(Status.SKIPPED, f"{self.recipe.name} is the reference the other recipes are compared with")
            pytest.skip(self.result.reason)
        folder = self._workdir("fidelity")
        try:
            _, (ours,) = _generate(self.case, 1, folder / "recipe.png", self.deadline)
            _, (theirs,) = _generate(self.reference, 1, folder / "reference.png", self.deadline)
        except WorkerFailed as error:
            self._fail(str(error))
        from sdperf.common.pngmeta import read_image

        db = psnr(read_image(folder / "recipe.png"), read_image(folder / "reference.png"))
        same = ours["image_sha256"] == theirs["image_sha256"]
        promise = self.recipe.fidelity
        if promise == "bit-exact" and not same:
            self._fail(f"case {self.case.id}: recipe {self.recipe.name} promises a bit-exact image but differs "
                       f"from {self.reference.id} (PSNR {db:.1f} dB); images in {folder}")
        floor = self.recipe.min_psnr_db
        if promise != "bit-exact" and floor is not None and db < floor:
            self._fail(f"case {self.case.id}: recipe {self.recipe.name} ({promise}) gives PSNR {db:.1f} dB against "
                       f"{self.reference.id}, below its floor of {floor:g} dB; images in {folder}")
        self._done(folder, f"fidelity vs {self.reference.id}: {'bit-exact' if same else f'PSNR {db:.1f} dB'} "
                           f"(promise: {promise}{f', floor {floor:g} dB' if floor is not None else ''})")

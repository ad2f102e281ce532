"""Correctness checks of a case: fixed-seed determinism against goldens, fidelity per recipe.

A dependency upgrade that changes the images must be caught as surely as one
that slows them down. The checks judge the images the run's benchmarks drew
(`sdperf.pytest_plugin.run_images`); they draw only what no benchmark did.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdperf.config.recipes import Recipe
from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, WorkerFailed
from sdperf.judging.determinism import judge_determinism
from sdperf.judging.images import keep_for_review, psnr
from sdperf.models.store import SYNTHETIC_NOTE
from sdperf.pytest_plugin.run_images import DrawnImages, RunImages
from sdperf.storage.goldens import GoldenKey, load_golden, record_golden, stack_digest
from sdperf.storage.results import CaseResult, Status

# Drawn by a determinism check when no benchmark of the run drew the case: two images in one
# worker, one in a fresh worker.
OWN_DRAWS = (2, 1)
COMPARE_WORKERS = "run the case with --sdperf-workers 2 to show it"


@dataclass(frozen=True)
class GoldenPolicy:
    root: Path
    storage_key: str
    record: bool


class CaseCheck:
    """What a correctness test gets as `sdperf_check`."""

    def __init__(self, case: Case, result: CaseResult, recipe: Recipe, reference: Case,
                 images: RunImages, workdir: Path, golden: GoldenPolicy) -> None:
        self.case = case
        self.result = result
        self.recipe = recipe
        self.reference = reference
        self.images = images
        self.workdir = workdir
        self.golden = golden
        # One deadline for the check: every worker it starts shares the case timeout.
        self.deadline = Deadline(case.run.timeout_s)

    def _named(self, kind: str) -> None:
        self.result.kind = kind
        self.result.case_id = f"{self.case.id} {kind}"

    def _fail(self, message: str) -> None:
        self.result.move_to(Status.FAILED, message.splitlines()[0])
        pytest.fail(message, pytrace=False)

    def _folder(self, check: str) -> Path:
        """Where a failed check keeps images for review (made only then)."""
        return self.workdir / f"{self.case.id}-{check}"

    def _done(self, note: str) -> None:
        self.result.move_to(Status.PASSED)
        self.result.notes.append(note)

    def _images_of(self, case: Case, per_worker: tuple[int, ...]) -> DrawnImages:
        """`case`'s images as this run drew them, or drawn now (and kept for the run's other checks)."""
        drawn = self.images.of(case)
        if drawn is None:
            try:
                drawn = self.images.draw(case, per_worker, self.deadline, source=f"the {self.case.id} {self.result.kind} check")
            except WorkerFailed as error:
                self._fail(str(error))
        # A benchmark that failed leaves its failure here, not a second draw of its images.
        why = f": {drawn.stopped}" if drawn.stopped else ""
        if not drawn.images:
            self._fail(f"case {self.case.id}: no image of {case.id} to check: {drawn.source} drew none{why}")
        if drawn.png is None or not drawn.png.is_file():
            self._fail(f"case {self.case.id}: no image of {case.id} to check: {drawn.source} stopped before saving one{why}")
        return drawn

    def determinism(self) -> None:
        """Same seed, same image: within each worker, across fresh workers, and against the golden."""
        self._named("determinism")
        folder = self._folder("determinism")
        drawn = self._images_of(self.case, OWN_DRAWS)
        self.result.rounds = [{"worker": worker, "image_sha256": digest} for worker, digest in drawn.images]
        found = judge_determinism(self.case.id, drawn.images, COMPARE_WORKERS)
        if found.problem:
            self._fail(found.problem)
        digest = found.digest
        evidence = f"{found.evidence()} (drawn by {drawn.source})"
        audit = drawn.load["audit"]
        key = GoldenKey(self.golden.storage_key, self.case.id, self.case.model.name,
                        stack_digest(audit["packages"], self.recipe.needs.packages), audit["cpu_kernels"])
        record_path, golden_png = key.paths(self.golden.root)
        if self.case.model.synthetic_full_size:
            return self._done(f"determinism: {evidence}; no golden: builtin:{self.case.model.name} has {SYNTHETIC_NOTE}")
        if self.golden.record:
            record_golden(self.golden.root, key, digest, drawn.load["weights_sha256"], audit["packages"], drawn.png)
            return self._done(f"determinism: recorded golden {record_path}; {evidence}")
        golden = load_golden(self.golden.root, key)
        if golden is None:
            return self._done(f"determinism: {evidence}; no golden for {key.stem()} in {self.golden.root} "
                                      "(record one on a trusted run with --sdperf-record-golden)")
        if golden.image_sha256 != digest:
            old, new, diff, db = keep_for_review(folder, golden_png, drawn.png)
            weights = ("weights unchanged" if golden.weights_sha256 == drawn.load["weights_sha256"]
                       else f"model weights changed ({golden.weights_sha256[:12]} to {drawn.load['weights_sha256'][:12]})")
            self._fail(f"case {self.case.id}: determinism regression: the fixed-seed image changed from the golden "
                       f"{golden.image_sha256[:12]} (recorded {golden.recorded_at}) to {digest[:12]}; {weights}; "
                       f"PSNR {db:.1f} dB; old {old}, new {new}, difference {diff}")
        self._done(f"determinism: matches golden {record_path.name} ({digest[:12]}); {evidence}")

    def fidelity(self) -> None:
        """The recipe's image against the image of the profile's control recipe (fp32 on CPUs), within the recipe's promise."""
        self._named("fidelity")
        if self.recipe.name == self.reference.recipe:
            self.result.move_to(Status.SKIPPED, f"{self.recipe.name} is the reference the other recipes are compared with")
            pytest.skip(self.result.reason)
        if self.case.model.synthetic_full_size:
            self.result.move_to(Status.SKIPPED, f"fidelity not judged: builtin:{self.case.model.name} has {SYNTHETIC_NOTE}")
            pytest.skip(self.result.reason)
        folder = self._folder("fidelity")
        ours = self._images_of(self.case, (1,))
        theirs = self._images_of(self.reference, (1,))
        from sdperf.common.pngmeta import read_image

        db = psnr(read_image(ours.png), read_image(theirs.png))
        same = ours.images[-1][1] == theirs.images[-1][1]
        promise = self.recipe.fidelity
        if promise == "bit-exact" and not same:
            self._keep(folder, ours, theirs)
            self._fail(f"case {self.case.id}: recipe {self.recipe.name} promises a bit-exact image but differs "
                       f"from {self.reference.id} (PSNR {db:.1f} dB); images in {folder}")
        floor = self.recipe.min_psnr_db
        if promise != "bit-exact" and floor is not None and db < floor:
            self._keep(folder, ours, theirs)
            self._fail(f"case {self.case.id}: recipe {self.recipe.name} ({promise}) gives PSNR {db:.1f} dB against "
                       f"{self.reference.id}, below its floor of {floor:g} dB; images in {folder}")
        self._done(f"fidelity vs {self.reference.id}: {'bit-exact' if same else f'PSNR {db:.1f} dB'} "
                           f"(promise: {promise}{f', floor {floor:g} dB' if floor is not None else ''}; "
                           f"images drawn by {ours.source} and {theirs.source})")

    @staticmethod
    def _keep(folder: Path, ours: DrawnImages, theirs: DrawnImages) -> None:
        """A failed fidelity check keeps both images for review."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ours.png, folder / "recipe.png")
        shutil.copyfile(theirs.png, folder / "reference.png")

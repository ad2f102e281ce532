"""Did a fixed seed draw one image? Judged from the images a run drew anyway: the warm-ups and
timed rounds of each worker, so checking costs no generation of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Marks what a run's images could not prove; a report looks for it to advise the full checks.
NOT_SHOWN = "not shown"


@dataclass(frozen=True)
class Determinism:
    """What the images show: `problem` is the failure message (None when none was found),
    `shown` what was proven, `not_shown` what these images cannot prove, with the reason."""

    digest: str | None
    problem: str | None = None
    shown: list[str] = field(default_factory=list)
    not_shown: list[str] = field(default_factory=list)

    def evidence(self) -> str:
        """One clause for the check's note: what was shown, then what was not."""
        return "; ".join([*self.shown, *self.not_shown])


def judge_determinism(case_id: str, images: Sequence[tuple[int, str]], how_to_compare_workers: str) -> Determinism:
    """`images`: (worker, image sha256) of every image drawn with the case's one seed, in the
    order drawn. Within a worker every image must equal its first; across workers every
    worker's first image must equal the first worker's. `how_to_compare_workers` is the
    advice when only one worker drew."""
    if not images:
        return Determinism(None, problem=f"case {case_id}: no image was drawn, so determinism cannot be judged")
    by_worker: dict[int, list[str]] = {}
    for worker, digest in images:
        by_worker.setdefault(worker, []).append(digest)
    digest = images[0][1]
    for drawn in by_worker.values():
        for later in drawn[1:]:
            if later != drawn[0]:
                return Determinism(digest, problem=(
                    f"case {case_id}: two generations with one seed in one worker differ "
                    f"({drawn[0][:12]} then {later[:12]})"
                ))
    firsts = [drawn[0] for drawn in by_worker.values()]
    for other in firsts[1:]:
        if other != firsts[0]:
            return Determinism(digest, problem=(
                f"case {case_id}: two fresh workers give different images for one seed "
                f"({firsts[0][:12]} and {other[:12]})"
            ))
    shown, not_shown = [], []
    repeated = max(len(drawn) for drawn in by_worker.values())
    if repeated > 1:
        shown.append(f"{len(images)} images in {len(by_worker)} worker(s), all {digest[:12]}")
    else:
        not_shown.append(f"within one worker {NOT_SHOWN}: no worker drew two images")
    if len(by_worker) > 1:
        if repeated == 1:
            shown.append(f"{len(by_worker)} fresh workers drew {digest[:12]}")
    else:
        not_shown.append(f"across workers {NOT_SHOWN}: one worker drew them ({how_to_compare_workers})")
    return Determinism(digest, shown=shown, not_shown=not_shown)

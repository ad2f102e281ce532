"""A/B runs of two dependency locks (`sdperf ab`, `--sdperf-ab BASE,HEAD`).

Each lock gets its own environment (`sdperf.pyenvs`); each case then runs in a
worker of each, timed alternately (A B, B A, ...) like `--sdperf-interleave`, so
machine drift cancels pair by pair. This module holds what is particular to A/B:
the two sides, the cases they run, why a case cannot run on a side, and the
comparison of the images the two sides drew.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdperf.cases import Case
from packaging.utils import canonicalize_name

from sdperf.pyenvs import LockError, ensure_lock_environment, environment_packages, package_changes


@dataclass(frozen=True)
class Side:
    label: str  # "A" (the current lock) or "B" (the proposed one)
    lock: Path
    env: str  # environment name under sdperf's cache
    packages: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"lock": str(self.lock), "env": self.env, "packages": self.packages}


@dataclass(frozen=True)
class Sides:
    a: Side
    b: Side

    @property
    def changes(self) -> list[str]:
        """What B installs differently from A."""
        return package_changes(self.a.packages, self.b.packages)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a.to_json(), "b": self.b.to_json(), "changes": self.changes}


def ensure_environments(base: Path, head: Path, say: Callable[[str], None] = lambda line: None) -> tuple[str, str]:
    """Both locks' environment names, created when missing (raises `LockError`)."""
    for lock in (base, head):  # both checked before minutes go into building either
        if not lock.is_file():
            raise LockError(f"lock file {str(lock)!r} does not exist; give a pip requirements file of pinned versions")
    return ensure_lock_environment(base, say=say), ensure_lock_environment(head, say=say)


def prepare(base: Path, head: Path, say: Callable[[str], None] = lambda line: None) -> Sides:
    """Both sides, their environments created when missing and their packages read."""
    envs = ensure_environments(base, head, say)
    return Sides(*(Side(label, lock, env, environment_packages(env))
                   for label, lock, env in zip("AB", (base, head), envs)))


def side_cases(case: Case, sides: Sides) -> tuple[Case, Case]:
    """The case as run in A and in B: same settings, another interpreter."""
    return dataclasses.replace(case, python_env=sides.a.env), dataclasses.replace(case, python_env=sides.b.env)


def skip_reason(case: Case, sides: Sides, facts) -> str | None:
    """Why `case` cannot be compared between the sides, or None. `facts` are the host's
    (`sdperf.requirements.HostFacts`); packages are looked up in each side's environment."""
    from sdperf.requirements import unmet_for

    if case.python_env:
        return (
            f"recipe {case.recipe} runs in its own environment '{case.python_env}', not in a lock's: "
            "an A/B run compares locks; deselect it"
        )
    for side in (sides.a, sides.b):
        in_side = dataclasses.replace(facts, package=lambda name, found=side.packages: found.get(canonicalize_name(name)))
        reason = unmet_for(case, in_side)
        if reason:
            return f"in {side.label} (lock {side.lock}): {reason}"
    return None


def compare_images(a_rounds: list[dict], b_rounds: list[dict], a_png: Path | None, b_png: Path | None,
                   review: Path) -> dict[str, Any]:
    """Did B draw the image A drew for the same seed? "identical", "changed" (with the PSNR
    of the last images and their difference image under `review`), or "nondeterministic"
    when A itself drew more than one image, which leaves nothing to compare with."""
    a = sorted({r["image_sha256"] for r in a_rounds})
    b = sorted({r["image_sha256"] for r in b_rounds})
    found: dict[str, Any] = {"a_sha256": a, "b_sha256": b}
    if len(a) > 1:
        return {**found, "outcome": "nondeterministic",
                "detail": f"A drew {len(a)} different images for one seed across its rounds: nothing to compare B with"}
    if a == b:
        return {**found, "outcome": "identical", "detail": f"B draws A's image ({a[0][:12]})"}
    detail = (f"B draws {len(b)} different images for one seed" if len(b) > 1
              else f"B draws {b[0][:12]} where A drew {a[0][:12]}")
    if a_png and b_png and a_png.is_file() and b_png.is_file():
        from sdperf.golden import keep_for_review

        old, new, diff, db = keep_for_review(review, a_png, b_png)
        found.update(psnr_db=db, review=str(review))
        detail += f"; PSNR {db:.1f} dB; A {old}, B {new}, difference {diff}"
    return {**found, "outcome": "changed", "detail": detail}


"""A/B runs of two dependency locks (`sdperf ab`, `--sdperf-ab BASE,HEAD`).

Each lock gets its own environment (`sdperf.execution.environments`); each case then runs in a
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

from packaging.utils import canonicalize_name

from sdperf.execution.cases import Case
from sdperf.execution.environments import LockError, ensure_lock_environment, environment_packages, package_changes


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
    (`sdperf.host.capabilities.HostFacts`); packages are looked up in each side's environment."""
    from sdperf.host.capabilities import unmet_for

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

"""Which of HEAD's changes can move alone, and which must move together.

An intermediate lock is only worth timing if it installs exactly what it pins: a package
whose new version needs a new version of another cannot move without it. Each change is
tried on BASE with uv's resolver (no installing: about a second from a warm cache); when
the resolver refuses, or would add or re-add a package the lock does not pin, the changes
it names join the attempt, until it resolves. Changes whose attempts share a change form
one group, which the culprit search then moves as one unit, and the report says why.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from sdperf.execution.installer import pip_sources, uv_binary
from sdperf.execution.locks import Change, Lock, intermediate_lock


class CouplingError(ValueError):
    """HEAD's changes cannot be grouped into installable units here; the message says why."""


@dataclass(frozen=True)
class Resolution:
    ok: bool  # resolves to exactly the pinned set
    added: tuple[str, ...]  # packages the resolver would install that the lock does not pin
    message: str  # the resolver's explanation when it refused, else ""


@dataclass
class Unit:
    """Changes that move together: one change, or a coupled group with the reasons."""

    changes: list[Change]
    reasons: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [change.name for change in self.changes]

    @property
    def label(self) -> str:
        return " + ".join(change.label for change in self.changes)


def resolve_lock(text: str, python: str) -> Resolution:
    """uv's resolution of the lock text for `python`'s platform, from pip's configured sources."""
    with tempfile.TemporaryDirectory(prefix="sdperf-resolve-") as folder:
        lock = Path(folder) / "lock.txt"
        lock.write_text(text)
        done = subprocess.run(
            [uv_binary(), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python", python,
             *pip_sources(python), str(lock)],
            capture_output=True, text=True,
        )
    if done.returncode != 0:
        message = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        return Resolution(False, (), message)
    pinned = {canonicalize_name(line.split("==", 1)[0].split(" @ ", 1)[0].strip())
              for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "-"))}
    resolved = {canonicalize_name(re.split(r"==| @ ", line, maxsplit=1)[0].strip())
                for line in done.stdout.splitlines() if line.strip() and not line.lstrip().startswith(("#", "-"))}
    added = tuple(sorted(resolved - pinned))
    return Resolution(not added, added, "")


def _mentioned(message: str, candidates: list[Change]) -> list[Change]:
    """The candidate changes whose package the resolver's message names."""
    words = {canonicalize_name(word) for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", message)}
    return [change for change in candidates if change.name in words]


def couple_changes(base: Lock, head: Lock, changes: list[Change], python: str,
                   say: Callable[[str], None] = lambda line: None) -> list[Unit]:
    """The changes grouped into units that each resolve on BASE by themselves."""
    # What the resolver adds to BASE itself (`pip freeze` leaves out setuptools, which some
    # package may need) is BASE's, not a change's.
    alone = resolve_lock(intermediate_lock(base, head, []), python)
    if alone.message:
        raise CouplingError(f"BASE ({base.path}) does not resolve on this host: {alone.message}")
    tolerated = set(alone.added)

    def resolves(moved: list[Change]) -> Resolution:
        found = resolve_lock(intermediate_lock(base, head, moved), python)
        added = tuple(name for name in found.added if name not in tolerated)
        return Resolution(found.ok or (not found.message and not added), added, found.message)

    closures: list[tuple[list[Change], list[str]]] = []
    for change in changes:
        moved, reasons = [change], []
        while True:
            found = resolves(moved)
            if found.ok:
                break
            others = [other for other in changes if other not in moved]
            if found.added:
                partners = [other for other in others if other.name in found.added]
                why = (f"{' + '.join(c.label for c in moved)} alone makes the resolver add "
                       f"{', '.join(found.added)}, which that lock does not pin")
            else:
                partners = _mentioned(found.message, others)
                why = f"{' + '.join(c.label for c in moved)} alone does not resolve: {found.message}"
            if not partners:
                # Nobody named (a package BASE still needs, removed): the first other change that
                # makes it resolve, else all of them.
                partners = next(([other] for other in others if resolves(moved + [other]).ok), others)
            if not partners:
                raise CouplingError(f"HEAD's changes do not resolve on this host even all together: {why}")
            reasons.append(why)
            moved += partners
        closures.append((moved, reasons))
    # Closures that share a change are one unit.
    units: list[Unit] = []
    for moved, reasons in closures:
        touching = [unit for unit in units if any(change in unit.changes for change in moved)]
        merged = Unit([], [])
        for unit in touching:
            units.remove(unit)
            merged.changes += [c for c in unit.changes if c not in merged.changes]
            merged.reasons += [r for r in unit.reasons if r not in merged.reasons]
        merged.changes += [c for c in moved if c not in merged.changes]
        merged.reasons += [r for r in reasons if r not in merged.reasons]
        units.append(merged)
    for unit in units:
        unit.changes.sort(key=lambda change: change.name)
        if len(unit.changes) > 1:
            say(f"sdperf culprit: coupled: {unit.label}: {unit.reasons[0]}")
    return sorted(units, key=lambda unit: unit.names)

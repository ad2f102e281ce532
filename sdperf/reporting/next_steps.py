"""The lines after the results table: where the run was saved, and what to run next."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from sdperf.judging.determinism import NOT_SHOWN
from sdperf.storage.results import CaseResult, Status


def _shown(path: Path, root: Path) -> str:
    """A path as the user would type it from the repository root."""
    try:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    except ValueError:
        return str(path)


def next_steps(results: Iterable[CaseResult], saved: list[Path], storage_key: str, emulated: str | None,
               root: Path, interrupted: bool = False) -> list[str]:
    """Where the run went and the commands that take it further: promote it as the baseline,
    compare a later run with it, run the full correctness checks when this run's checks could
    not show everything from its own images (one worker a case), or had none."""
    results = list(results)
    lines = [f"saved: {_shown(path, root)}" for path in saved]
    numbered = [path for path in saved if path.name[:4].isdigit()]
    timed = [r for r in results if r.kind == "latency" and r.status in (Status.PASSED, Status.REGRESSED)]
    if interrupted:
        lines.append("interrupted: only the cases that finished are saved, and the run cannot be promoted; "
                     "run it again to the end to make a baseline")
        return lines
    if not numbered or not timed or storage_key.startswith("ab-"):
        return lines
    profiles = sorted({r.profile for r in timed})
    select = f"-m {shlex.quote(' or '.join(profiles))}"
    if emulated:
        select = f"--sdperf-profile {emulated} {select}"
    lines.append(f"next: sdperf promote {_shown(numbered[-1], root)}   # make this run the {storage_key} baseline "
                 f"(baselines/{storage_key}/)")
    lines.append(f"      pytest {select} --benchmark-compare   # judge a later run against that baseline")
    checks = [r for r in results if r.kind in ("check", "determinism", "fidelity")]
    if not checks:
        lines.append(f"      pytest {select} -k 'determinism or fidelity'   # the correctness checks: fixed-seed "
                     "images against goldens, each recipe against the control image")
    elif any(NOT_SHOWN in note for r in checks for note in r.notes):
        lines.append(f"      pytest {select} -k 'determinism or fidelity'   # the full correctness checks: each "
                     "fixed-seed image twice in one worker and again in a fresh one (this run showed less)")
    return lines

"""The lines after the results table: where the run was saved, and what to run next."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from sdperf.storage.results import CaseResult, Status


def _shown(path: Path, root: Path) -> str:
    """A path as the user would type it from the repository root."""
    try:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    except ValueError:
        return str(path)


def next_steps(results: Iterable[CaseResult], saved: list[Path], storage_key: str, emulated: str | None,
               root: Path) -> list[str]:
    """Where the run went and the commands that take it further: promote it as the baseline,
    compare a later run with it, run the correctness checks when this run had none."""
    results = list(results)
    lines = [f"saved: {_shown(path, root)}" for path in saved]
    numbered = [path for path in saved if path.name[:4].isdigit()]
    timed = [r for r in results if r.kind == "latency" and r.status in (Status.PASSED, Status.REGRESSED)]
    if not numbered or not timed or storage_key.startswith("ab-"):
        return lines
    profiles = sorted({r.profile for r in timed})
    select = f"-m {' or '.join(profiles)}" if len(profiles) == 1 else f"-m {shlex.quote(' or '.join(profiles))}"
    if emulated:
        select = f"--sdperf-profile {emulated} {select}"
    lines.append(f"next: sdperf promote {_shown(numbered[-1], root)}   # make this run the {storage_key} baseline "
                 f"(baselines/{storage_key}/)")
    lines.append(f"      pytest {select} --benchmark-compare   # judge a later run against that baseline")
    if not any(r.kind in ("check", "determinism", "fidelity") for r in results):
        lines.append(f"      pytest {select} -k 'determinism or fidelity'   # the correctness checks: fixed-seed "
                     "images against goldens, each recipe against the control image")
    return lines

"""`sdperf culprit BASE_LOCK HEAD_LOCK [pytest options]`: which of HEAD's package changes
makes a case slower, hungrier or draw another image.

One A/B run of HEAD against BASE finds the regressed cases, as `sdperf ab` would. For
each, locks in between (BASE plus some of HEAD's changes, coupled changes moving together)
are run against BASE, one case at a time, each an ordinary interleaved A/B run in its own
pytest process, and narrowed to the smallest set of changes that still regresses the way
HEAD did. Every step's lock, run file and output stay in the work folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdperf.execution.coupling import Unit, couple_changes
from sdperf.execution.environments import ROOT, remove_lock_environment
from sdperf.execution.locks import Lock, intermediate_lock, lock_changes
from sdperf.judging.culprit_search import find_culprit
from sdperf.judging.statistics import Verdict
from sdperf.reporting.culprit_report import CaseSearch, Step, save_reports, write_reports

LATENCY_TESTS = ROOT / "perf" / "test_latency.py"


def say(line: str) -> None:
    print(f"sdperf culprit: {line}", flush=True)


def regressed_metrics(case: dict[str, Any]) -> set[str]:
    """What the case regressed in against side A: verdict names that came out slower, and
    "image" when B drew another image."""
    found = {name for name, verdict in ((case.get("verdicts") or {}).get("ab") or {}).items()
             if verdict.get("outcome") == "slower"}
    if (case.get("ab_image") or {}).get("outcome") == "changed":
        found.add("image")
    return found


def describe_case(case: dict[str, Any]) -> str:
    """One line: each A/B verdict and the image comparison."""
    parts = [f"{name} {Verdict(**verdict).describe()}"
             for name, verdict in ((case.get("verdicts") or {}).get("ab") or {}).items()]
    image = case.get("ab_image") or {}
    if image:
        parts.append(f"image {image.get('outcome')}")
    return "; ".join(parts) or f"status {case.get('status')}: {case.get('reason') or 'no verdict'}"


class StepFailed(RuntimeError):
    """A step's A/B run did not judge the case (crashed, timed out, skipped): the search of that
    case stops there, with the reason; the other cases' searches go on."""


@dataclass
class ABRunner:
    """Runs A/B runs of BASE against a lock in fresh pytest processes; counts them."""

    base: Path
    pytest_args: list[str]
    folder: Path
    runs: int = 0

    def run(self, lock: Path, name: str, selection: list[str], live: bool) -> tuple[dict[str, dict], float, int]:
        """Cases of the run by id, its wall time and pytest's exit status."""
        self.runs += 1
        report = self.folder / f"{name}.json"
        command = [sys.executable, "-m", "pytest", *selection, f"--sdperf-ab={self.base},{lock}", *self.pytest_args,
                   # Last, so they win over the user's: each run's files stay with it, the nightly history untouched.
                   "--benchmark-json", str(report), "--sdperf-markdown", str(report.with_suffix(".md")),
                   "--sdperf-history", "off", "-p", "no:cacheprovider"]
        # The culprit report goes to the job summary; each run's own Markdown stays in the work folder.
        env = {key: value for key, value in os.environ.items() if key != "GITHUB_STEP_SUMMARY"}
        started = time.perf_counter()
        with open(self.folder / f"{name}.log", "w") as log:  # a step's output; step 0's goes to the terminal
            done = subprocess.run(command, env=env, stdout=None if live else log,
                                  stderr=None if live else subprocess.STDOUT)
        wall = time.perf_counter() - started
        if not report.is_file():
            output = "printed above" if live else str(self.folder / f"{name}.log")
            raise StepFailed(f"the A/B run {name} saved no results (pytest exit status {done.returncode}); "
                             f"its output: {output}")
        cases = {case["case_id"]: case for case in json.loads(report.read_text())["sdperf"]["cases"]}
        return cases, wall, done.returncode


def _search_case(search: CaseSearch, base: Lock, head: Lock, runner: ABRunner, checkpoint: Callable[[], None]) -> None:
    case_id, metrics, units = search.case_id, set(search.metrics), search.units
    node = f"{LATENCY_TESTS}::test_latency[{case_id}]"

    def trial(subset: list[Unit]) -> bool:
        changes = [change for unit in subset for change in unit.changes]
        number = len(search.steps) + 1
        lock = runner.folder / f"{case_id}-step{number}.txt"
        lock.write_text(intermediate_lock(base, head, changes))
        cases, wall, _ = runner.run(lock, f"{case_id}-step{number}", [node], live=False)
        found = cases.get(case_id)
        if found is None:
            raise StepFailed(f"step {number} of {case_id} did not run the case; see {lock.with_suffix('.log')}")
        if found.get("status") not in ("passed", "regressed"):
            raise StepFailed(f"step {number} of {case_id} ({' + '.join(c.label for c in changes)}) "
                             f"ended {found.get('status')}: {found.get('reason')}; see {lock.with_suffix('.log')}")
        reproduced = bool(regressed_metrics(found) & metrics)
        step = Step(number, [change.label for change in changes], str(lock), describe_case(found),
                    sorted(regressed_metrics(found)), reproduced, wall)
        search.steps.append(step)
        checkpoint()
        say(f"{case_id} step {number}: BASE + {', '.join(step.changes)}: "
            f"{'regressed' if reproduced else 'not regressed'} ({step.detail}) in {wall:.0f} s")
        return reproduced

    outcome = find_culprit(units, trial)
    search.culprit, search.confirmed = outcome.culprit, outcome.confirmed


def gate_cases(run_file: Path, base: Path, head: Path) -> dict[str, dict]:
    """The cases of an A/B run already made of these two locks (the gate's), by id. Its sides'
    environments are named by lock content, interpreter and checkout: the same names here
    prove it compared these locks. Raises LockFileError naming what differs."""
    from sdperf.execution.environments import lock_environment_name
    from sdperf.execution.locks import LockFileError

    try:
        document = json.loads(run_file.read_text())
        sides, cases = document["sdperf"]["ab"], document["sdperf"]["cases"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LockFileError(f"--from-run {str(run_file)!r} is not the JSON of an A/B run ({error!r}); give the "
                            "--benchmark-json file of `sdperf ab BASE_LOCK HEAD_LOCK`") from None
    for label, lock in (("a", base), ("b", head)):
        recorded = (sides.get(label) or {}).get("env")
        if recorded != lock_environment_name(lock):
            raise LockFileError(f"--from-run {str(run_file)!r} did not run {lock} as side {label.upper()} here "
                                f"(its environment was {recorded}); run the culprit search without --from-run")
    return {case["case_id"]: case for case in cases}


def run_culprit(base_path: Path, head_path: Path, pytest_args: list[str], json_out: Path | None,
                markdown_out: Path | None, folder: Path, from_run: Path | None = None) -> int:
    from sdperf.execution.locks import read_lock

    base, head = read_lock(base_path), read_lock(head_path)  # LockFileError: the caller's usage error
    changes = lock_changes(base, head)
    if not changes:
        say(f"{head_path} pins exactly what {base_path} pins: nothing to search")
        write_reports([], changes, 0, json_out, markdown_out)
        return 0
    head_cases = gate_cases(from_run, base_path, head_path) if from_run else {}
    folder.mkdir(parents=True, exist_ok=True)
    say(f"{len(changes)} changes: {', '.join(change.label for change in changes)}; work folder {folder}")
    runner = ABRunner(base_path, pytest_args, folder)
    if from_run:
        say(f"step 0: HEAD against BASE as {from_run} ran it (not run again)")
    else:
        say("step 0: HEAD against BASE, every selected case (as sdperf ab)")
        head_cases, wall, _ = runner.run(head_path, "head", [str(LATENCY_TESTS)], live=True)
        say(f"step 0 took {wall:.0f} s")
    regressed = {case_id: case for case_id, case in head_cases.items() if regressed_metrics(case)}
    say(f"{len(regressed)} of {len(head_cases)} cases regressed")
    if not regressed:
        write_reports([], changes, runner.runs, json_out, markdown_out, head_cases)
        return 0
    units = couple_changes(base, head, changes, sys.executable, say=say)
    searches = []
    try:
        for case_id, case in regressed.items():
            say(f"{case_id}: regressed in {', '.join(sorted(regressed_metrics(case)))}; "
                f"searching {len(units)} units of change")
            search = CaseSearch(case_id, sorted(regressed_metrics(case)), describe_case(case), units)
            searches.append(search)
            try:
                _search_case(search, base, head, runner,
                             lambda: save_reports(searches, changes, runner.runs, json_out, markdown_out))
            except StepFailed as error:
                search.stopped = str(error)
                say(f"{case_id}: search stopped: {error}")
    finally:
        # The locks in between are kept in the work folder; their environments (gigabytes each
        # on a board without uv's links) are not: BASE's and HEAD's stay for the next gate.
        for lock in folder.glob("*-step*.txt"):
            remove_lock_environment(lock)
    write_reports(searches, changes, runner.runs, json_out, markdown_out, head_cases)
    return 1 if regressed else 0

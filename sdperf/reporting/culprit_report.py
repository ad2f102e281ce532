"""What `sdperf culprit` found: in the terminal, as Markdown (also appended to the GitHub
job summary when there is one) and as JSON: {case: {"culprit": [...], "steps": [...], ...}}."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Step:
    number: int
    changes: list[str]  # HEAD's changes applied to BASE in this step's lock
    lock: str
    detail: str  # the A/B verdicts
    regressed_in: list[str]
    reproduced: bool
    wall_s: float


@dataclass
class CaseSearch:
    case_id: str
    metrics: list[str]  # what HEAD regressed in: latency, peak_rss_bytes, image ...
    head_detail: str
    units: list[Any]  # sdperf.execution.coupling.Unit
    steps: list[Step] = field(default_factory=list)
    culprit: list[Any] = field(default_factory=list)
    confirmed: bool = False
    stopped: str | None = None  # why the search ended before an answer

    def culprit_names(self) -> list[str]:
        return [name for unit in self.culprit for name in unit.names]

    def coupled(self) -> list[dict[str, Any]]:
        return [{"packages": unit.names, "why": unit.reasons} for unit in self.culprit if len(unit.changes) > 1]

    def confirming_step(self) -> Step | None:
        labels = sorted(change.label for unit in self.culprit for change in unit.changes)
        return next((step for step in self.steps if step.reproduced and sorted(step.changes) == labels), None)

    def summary(self) -> str:
        names = ", ".join(unit.label for unit in self.culprit)
        if self.stopped:
            return f"no answer: {self.stopped}"
        if not self.culprit:
            return "no culprit found"
        step = self.confirming_step()
        if not self.confirmed:
            return (f"{names} is where the search ended, but BASE with it alone did not regress: the A/B "
                    "verdicts disagreed along the way (noise); run again with more rounds (--sdperf-rounds)")
        figures = step.detail if step else "HEAD's own A/B (the only change)"
        return f"{names}: {figures}"

    def to_json(self) -> dict[str, Any]:
        return {
            "culprit": self.culprit_names(),
            "confirmed": self.confirmed,
            "stopped": self.stopped,
            "coupled": self.coupled(),
            "regressed_in": self.metrics,
            "head": self.head_detail,
            "units": [unit.names for unit in self.units],
            "steps": [asdict(step) for step in self.steps],
        }


def terminal_lines(searches: list[CaseSearch], changes: list, runs: int, head_cases: dict[str, dict]) -> list[str]:
    lines = [f"sdperf culprit: {len(changes)} changes, {runs} A/B runs"]
    if not searches:
        lines.append("sdperf culprit: no case regressed between BASE and HEAD: nothing to search")
    for search in searches:
        lines.append(f"sdperf culprit: {search.case_id}: {search.summary()}")
        for group in search.coupled():
            lines.append(f"sdperf culprit: {search.case_id}: coupled, they move together: "
                         f"{', '.join(group['packages'])}: {group['why'][0]}")
    for case_id, case in head_cases.items():
        if case.get("status") not in ("passed", "regressed", "skipped"):
            lines.append(f"sdperf culprit: {case_id} ended {case.get('status')} in HEAD's A/B, not searched: "
                         f"{case.get('reason')}")
    return lines


def markdown(searches: list[CaseSearch], changes: list, runs: int) -> str:
    out = ["## Culprit search", "", f"{len(changes)} package changes between BASE and HEAD; {runs} A/B runs.", ""]
    if not searches:
        out.append("No case regressed between BASE and HEAD: nothing to search.")
    for search in searches:
        out += [f"### {search.case_id}", "", f"**Culprit:** {search.summary()}", ""]
        for group in search.coupled():
            out += [f"Coupled (they can only move together): {', '.join(group['packages'])}: {group['why'][0]}", ""]
        out += ["| step | BASE plus | regressed | verdicts |", "| --- | --- | --- | --- |",
                f"| 0 | all of HEAD | {', '.join(search.metrics)} | {search.head_detail} |"]
        out += [f"| {step.number} | {', '.join(step.changes)} | {'yes' if step.reproduced else 'no'} | {step.detail} |"
                for step in search.steps]
        out.append("")
    return "\n".join(out) + "\n"


def save_reports(searches: list[CaseSearch], changes: list, runs: int, json_out: Path | None,
                 markdown_out: Path | None) -> str:
    """The Markdown and JSON files as they stand (after every step: a search cut short by a time
    limit keeps what it found). Returns the Markdown."""
    text = markdown(searches, changes, runs)
    if markdown_out:
        markdown_out.write_text(text)
    if json_out:
        json_out.write_text(json.dumps({search.case_id: search.to_json() for search in searches}, indent=2) + "\n")
    return text


def write_reports(searches: list[CaseSearch], changes: list, runs: int, json_out: Path | None,
                  markdown_out: Path | None, head_cases: dict[str, dict] | None = None) -> None:
    """The final report: terminal lines, the files, and the GitHub job summary when there is one."""
    for line in terminal_lines(searches, changes, runs, head_cases or {}):
        print(line, flush=True)
    text = save_reports(searches, changes, runs, json_out, markdown_out)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(text)

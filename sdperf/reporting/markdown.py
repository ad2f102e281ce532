"""The run's results as GitHub-flavoured Markdown, for a CI job page or a pull request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sdperf.reporting.table import (
    control_cell,
    control_header,
    detail_lines,
    format_seconds,
    same_run_controls,
    verdict_cell,
)
from sdperf.storage.results import CaseResult

_STATUS_MARK = {"passed": "✅", "regressed": "❌", "failed": "❌", "invalid": "⚠️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(results: Iterable[CaseResult], compared: str | None, title: str = "sdperf results",
                    controls: Mapping[str, str] | None = None) -> str:
    everything = list(results)
    same_run = same_run_controls(everything, controls)
    timed = [r for r in everything if r.kind in ("latency", "harness") and r.status != "skipped"]
    lines = [f"## {title}", ""]
    for note in (compared or "").splitlines():
        lines += [f"_{_cell(note)}_", ""]
    if timed:
        lines += [
            f"| case | model | status | median s | s/step | peak RSS MiB | vs baseline | {control_header(timed)} | published |",
            "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for result in timed:
            peak = result.peak_rss_bytes()
            ref = result.reference
            published = "-" if not ref else f"{ref['latency_s']:g} s" + ("" if ref["comparable"] else " (n/c)")
            lines.append(
                "| " + " | ".join(_cell(cell) for cell in (
                    result.case_id, result.model, f"{_STATUS_MARK.get(result.status, '')} {result.status}".strip(),
                    format_seconds(result.median_s), format_seconds(result.seconds_per_step()),
                    "-" if peak is None else f"{peak / 2**20:.0f}",
                    verdict_cell(result, "baseline"), control_cell(result, same_run), published,
                )) + " |"
            )
        lines.append("")
    details = [f"- {_cell(line)}" for line in detail_lines(everything, same_run)]
    if details:
        lines += ["<details open><summary>details</summary>", "", *details, "", "</details>", ""]
    return "\n".join(lines)

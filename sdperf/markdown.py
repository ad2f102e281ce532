"""The run's results as GitHub-flavoured Markdown, for a CI job page or a pull request."""

from __future__ import annotations

from collections.abc import Iterable

from sdperf.report import verdict_cell, verdict_lines
from sdperf.results import CaseResult

_STATUS_MARK = {"passed": "✅", "regressed": "❌", "failed": "❌", "invalid": "⚠️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown_report(results: Iterable[CaseResult], compared: str | None, title: str = "sdperf results") -> str:
    everything = list(results)
    timed = [r for r in everything if r.kind in ("latency", "harness") and r.status != "skipped"]
    checks = [r for r in everything if r.kind not in ("latency", "harness") and r.status != "skipped"]
    lines = [f"## {title}", ""]
    if compared:
        lines += [f"_{_cell(compared)}_", ""]
    if timed:
        lines += [
            "| case | model | status | median s | s/step | peak RSS MiB | vs baseline | vs fp32 | published |",
            "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for result in timed:
            peak = result.peak_rss_bytes()
            ref = result.reference
            published = "-" if not ref else f"{ref['latency_s']:g} s" + ("" if ref["comparable"] else " (n/c)")
            lines.append(
                "| " + " | ".join(_cell(cell) for cell in (
                    result.case_id, result.model, f"{_STATUS_MARK.get(result.status, '')} {result.status}".strip(),
                    _seconds(result.median_s), _seconds(result.seconds_per_step()),
                    "-" if peak is None else f"{peak / 2**20:.0f}",
                    verdict_cell(result, "baseline"), verdict_cell(result, "control"), published,
                )) + " |"
            )
        lines.append("")
    details = []
    for result in timed:
        if result.status in ("failed", "invalid", "regressed") and result.reason:
            details.append(f"- **{_cell(result.case_id)} {result.status}:** {_cell(result.reason)}")
        details.extend(f"- {_cell(line)}" for line in verdict_lines(result))
    for check in checks:
        detail = check.reason if check.status != "passed" else "; ".join(check.notes)
        details.append(f"- {_cell(check.case_id)}: {check.status}{': ' + _cell(detail) if detail else ''}")
    skipped: dict[str, list[str]] = {}
    for result in everything:
        if result.status == "skipped":
            skipped.setdefault(result.reason, []).append(result.case_id)
    details.extend(f"- skipped ({_cell(', '.join(cases))}): {_cell(reason)}" for reason, cases in skipped.items())
    for result in timed:
        ref = result.reference
        if ref:
            why = "" if ref["comparable"] else f" (n/c: not comparable, {ref['why_not']})"
            details.append(f"- {_cell(result.case_id)} published: {ref['latency_s']:g} s, {_cell(ref['label'])}{why}; "
                           f"source: {_cell(ref['source'])}")
    if details:
        lines += ["<details open><summary>details</summary>", "", *details, "", "</details>", ""]
    return "\n".join(lines)

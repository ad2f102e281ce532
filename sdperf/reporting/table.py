"""The results table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sdperf.judging.statistics import Verdict
from sdperf.storage.results import CaseResult

_COLUMNS = (
    "case",
    "model",
    "status",
    "rounds",
    "mean s",
    "median s",
    "first s",
    "load s",
    "text s",
    "denoise s",
    "vae s",
    "s/step",
    "peak RSS MiB",
    "image",
    "vs baseline",
    "vs control",
)


def verdict_cell(result: CaseResult, against: str) -> str:
    """Latency outcome and ratio against the baseline or the interleaved control, or '-'."""
    verdict = result.verdicts.get(against, {}).get("latency")
    if not verdict:
        return "-"
    return f"{verdict['outcome']} {verdict['ratio'] - 1:+.1%}"


def control_header(results: Iterable[CaseResult]) -> str:
    """"vs control", or "B vs A" for an A/B run."""
    return "B vs A" if any("ab" in result.verdicts for result in results) else "vs control"


SAME_RUN_NOTE = (
    "vs control \"same run\": the median against the profile's control case timed earlier in this run, not "
    "interleaved, so machine drift between the cases is not cancelled; --sdperf-interleave judges pair by pair"
)


def same_run_controls(results: Iterable[CaseResult], controls: Mapping[str, str] | None) -> dict[str, CaseResult]:
    """Profile -> its control case's result in this run (`controls`: profile -> control recipe),
    where that case was timed."""
    if not controls:
        return {}
    return {
        r.profile: r for r in results
        if r.kind == "latency" and controls.get(r.profile) == r.recipe and r.median_s and r.status in ("passed", "regressed")
    }


def control_cell(result: CaseResult, same_run: Mapping[str, CaseResult] | None = None) -> str:
    """The "vs control" column: the interleaved control, in an A/B run side A, or else the
    control case of the same run (a ratio of medians, not a verdict)."""
    if result.verdicts.get("ab") or result.verdicts.get("control"):
        return verdict_cell(result, "ab" if "ab" in result.verdicts else "control")
    control = (same_run or {}).get(result.profile)
    if control is None or result.kind != "latency" or not result.median_s or result.status == "running":
        return "-"  # a case stopped halfway (Ctrl-C) is not compared on the rounds it got
    if control is result:
        return "(control)"
    if control.model != result.model:
        return "-"
    return f"{result.median_s / control.median_s - 1:+.1%} same run"


def verdict_lines(result: CaseResult) -> list[str]:
    """One line per verdict with its interval, p-value and sample counts, and an A/B run's image comparison."""
    lines = []
    labels = (
        ("baseline", f"vs baseline {result.baseline_source}"),
        ("control", f"vs {result.control_recipe} interleaved"),
        ("ab", "B vs A interleaved"),
    )
    for against, label in labels:
        for name, fields in result.verdicts.get(against, {}).items():
            lines.append(f"{result.case_id} {label}: {name} {Verdict(**fields).describe()}")
    if result.ab_image:
        lines.append(f"{result.case_id} B vs A: image {result.ab_image['outcome']}: {result.ab_image['detail']}")
    return lines


def format_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _row(result: CaseResult, same_run: Mapping[str, CaseResult]) -> list[str]:
    phases = result.phase_means()
    peak = result.peak_rss_bytes()
    hashes = result.image_hashes()
    image = "-" if not hashes else hashes[0][:12] + ("" if len(hashes) == 1 else f" (+{len(hashes) - 1} differ!)")
    return [
        result.case_id,
        result.model,
        "unfinished" if result.status == "running" else result.status,  # the table comes after the run
        str(len(result.rounds)),
        format_seconds(result.mean_s),
        format_seconds(result.median_s),
        format_seconds(result.first_call_s),
        format_seconds(result.load.get("load_s")),
        format_seconds(phases.get("text_encoding_s")),
        format_seconds(phases.get("denoise_s")),
        format_seconds(phases.get("vae_decode_s")),
        format_seconds(result.seconds_per_step()),
        "-" if peak is None else f"{peak / 2**20:.0f}",
        image,
        verdict_cell(result, "baseline"),
        control_cell(result, same_run),
    ]


def si(value: float, unit: str) -> str:
    """1.23e12 -> '1.23 TFLOP' style, three significant figures."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def roofline_line(result: CaseResult) -> str | None:
    """The case's work per denoiser call, the rate its timed steps achieved, and that rate
    against this host's measured GEMM peak."""
    roof = result.roofline()
    if roof is None:
        return None
    if "error" in roof:
        return f"{result.case_id}: roofline not computed: {roof['error']}"
    line = f"{result.case_id}: roofline: {si(roof['flops_per_denoiser_call'], 'FLOP')} a denoiser call"
    where = f"{roof['peak_threads']} threads" if roof["peak_device"] == "cpu" else roof["peak_device"]
    peak = f"{roof['peak_dtype']} GEMM peak here {si(roof['peak_flops'], 'FLOP/s')} ({where})"
    if roof["achieved_flops"] is None:
        return f"{line}; no timed step to rate; {peak}"
    return f"{line}, {si(roof['achieved_flops'], 'FLOP/s')} achieved, {roof['fraction_of_peak']:.0%} of the {peak}"


def _timed(results: list[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.status != "skipped" and r.kind in ("latency", "harness")]


def detail_lines(results: Iterable[CaseResult], same_run: Mapping[str, CaseResult] | None = None) -> list[str]:
    """What follows the table, in the terminal and in Markdown alike: failures, notes and
    verdicts per timed case, then checks, skips grouped by reason, and published figures."""
    everything = list(results)
    timed = _timed(everything)
    checks = [r for r in everything if r.status != "skipped" and r.kind not in ("latency", "harness")]
    lines = []
    if any(control_cell(r, same_run).endswith("same run") for r in timed):
        lines.append(SAME_RUN_NOTE)
    for result in timed:
        if result.status in ("failed", "invalid", "regressed") and result.reason:
            lines.append(f"{result.case_id} {result.status}: {result.reason}")
        lines.extend(f"{result.case_id}: {note}" for note in result.notes)
        roofline = roofline_line(result)
        if roofline:
            lines.append(roofline)
        lines.extend(verdict_lines(result))
    for check in checks:
        detail = check.reason if check.status != "passed" else "; ".join(check.notes)
        lines.append(f"{check.case_id}: {check.status}{': ' + detail if detail else ''}")
    skipped: dict[str, list[str]] = {}
    for result in everything:
        if result.status == "skipped":
            skipped.setdefault(result.reason, []).append(result.case_id)
    for reason, cases in skipped.items():
        lines.append(f"skipped ({', '.join(cases)}): {reason}")
    for result in timed:
        ref = result.reference
        if ref:
            # A figure recorded as not comparable without saying why still says so, never "not comparable: ".
            comparable = f" (not comparable: {ref.get('why_not') or 'the run recorded no reason'})"
            if ref.get("comparable"):
                comparable = (f"; measured here {result.median_s:.1f} s ({result.median_s / ref['latency_s'] - 1:+.0%})"
                              if result.median_s else "; no timing here to compare")
            lines.append(
                f"{result.case_id} published: {ref['latency_s']:g} s, {ref['label']}{comparable}; source: {ref['source']}"
            )
    return lines


# Left out first when the table must fit a terminal: the detail of a row, never its judgement.
# (The Markdown summary and the saved JSON keep every column.)
_DROPPABLE = ("mean s", "text s", "vae s", "load s", "first s", "rounds", "model", "s/step", "peak RSS MiB", "image")


def results_table(results: Iterable[CaseResult], controls: Mapping[str, str] | None = None,
                  width: int | None = None) -> list[str]:
    """Aligned text lines: one row per timed case, then `detail_lines`. `controls` (profile ->
    control recipe) fills "vs control" from the same run where nothing was interleaved. With
    `width`, columns of `_DROPPABLE` are left out, in that order, until the table fits (a line says which)."""
    everything = list(results)
    timed = _timed(everything)
    same_run = same_run_controls(everything, controls)
    lines = []
    if timed:
        rows = [[*_COLUMNS[:-1], control_header(timed)]] + [_row(r, same_run) for r in timed]
        kept = _fit(rows, width)
        rows = [[row[i] for i in kept] for row in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(kept))]
        lines = ["  ".join(cell.ljust(size) for cell, size in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * size for size in widths))
        left_out = [_COLUMNS[i] for i in range(len(_COLUMNS)) if i not in kept]
        if left_out:
            lines.append(f"columns left out to fit {width} characters: {', '.join(left_out)} "
                         "(a wider terminal, --sdperf-markdown and the saved JSON have them)")
    return lines + detail_lines(everything, same_run)


def _fit(rows: list[list[str]], width: int | None) -> list[int]:
    """Indexes of the columns to show within `width` characters."""
    kept = list(range(len(_COLUMNS)))

    def total() -> int:
        return sum(max(len(row[i]) for row in rows) for i in kept) + 2 * (len(kept) - 1)

    for name in _DROPPABLE:
        if width is None or total() <= width:
            break
        kept.remove(_COLUMNS.index(name))
    return kept

"""The nightly history as a static HTML site: per storage key and machine, each case's nightly
medians with their spread, change points and verdicts, and the latest night's table with its images.

Written from the history alone (`sdperf dashboard --out DIR`). Self-contained: styles are
inline, plots are inline SVG (matplotlib draws text as paths, so no font is fetched either),
images are copied under DIR/images and every link is relative. Nothing is fetched at view time.

    DIR/index.html                   unfinished runs, damaged files, each storage key's latest nights
    DIR/<key>--<machine>.html        one section per case: plot, noise, gate, what changed
    DIR/images/                      each case's latest night image, when it was kept
"""

from __future__ import annotations

import html
import io
import re
import shutil
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdperf.reporting.history_report import SeriesReport
from sdperf.reporting.trend import MARKERS
from sdperf.storage.history import Loaded, safe_name

NO_IMAGE = "image not kept (run with --sdperf-save-images DIR)"
_OUTCOME_LABELS = {"slower": "slower", "faster": "faster", "same": "same", "inconclusive": "inconclusive",
                   "none": "not compared"}
_GATE_TEXT = {"slowdown": "slowdown (fails the nightly)", "suspected": "suspected slowdown (warning)", "ok": "ok"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1300px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.1em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.slowdown, .slower, .regressed { color: #b00; font-weight: 600; } .suspected, .inconclusive { color: #b60; }
.ok, .faster { color: #070; } .same { color: #14a; } .none, .note { color: #666; }
section.case { border-top: 1px solid #ddd; padding-top: .5em; margin-top: 1.2em; }
svg { max-width: 100%; height: auto; }
.image img { width: 192px; height: auto; border: 1px solid #ccc; vertical-align: top; }
img.thumb { width: 48px; height: auto; border: 1px solid #ccc; vertical-align: middle; margin-right: .4em; }
code { font-size: .92em; } td.case, td.num, td code, .when { white-space: nowrap; }
"""


def write_dashboard(reports: list[SeriesReport], loaded: Loaded, out: Path) -> Path:
    """Write the site under `out` (created if needed) and return the path of its index.html.
    `reports` is `analyse(loaded.entries, profiles)`: one per storage key x machine x case."""
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[SeriesReport]] = {}
    for report in reports:
        groups.setdefault((report.storage_key, report.machine), []).append(report)
    images = {id(report): _copy_image(report, out) for report in reports}
    parts = [f"<h1>sdperf dashboard</h1>\n<p>{_summary(loaded, reports)}</p>",
             _runs_section(loaded.runs), _damaged_section(loaded)]
    if not reports:
        parts.append("<p><strong>The history holds no entries yet.</strong> A run of the suite (<code>pytest perf"
                     "</code>) keeps each finished case; give another folder with <code>--history DIR</code>.</p>")
    for (storage_key, machine), found in sorted(groups.items()):
        page = _page_name(storage_key, machine)
        parts.append(f'<h2><a href="{_e(page)}">{_e(storage_key)} on {_e(machine)}</a></h2>\n'
                     f"<p>{len(found)} case(s); plots, noise and what changed on "
                     f'<a href="{_e(page)}">the {_e(storage_key)} page</a>.</p>\n'
                     + _latest_table(found, images, page))
        body = [f'<p><a href="index.html">&larr; all storage keys</a></p>\n'
                f"<h1>{_e(storage_key)} on {_e(machine)}</h1>\n"
                f"<p>Profile {_e(found[0].profile)}; {len(found)} case(s).</p>\n"
                "<h2>Latest night</h2>\n" + _latest_table(found, images, ""),
                "<h2>Cases</h2>",
                *(_case_section(report, images[id(report)]) for report in found)]
        (out / page).write_text(_document(f"sdperf: {storage_key} on {machine}", "\n".join(body)), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_document("sdperf dashboard", "\n".join(part for part in parts if part)), encoding="utf-8")
    return index


def _e(text: Any) -> str:
    return html.escape(str(text))


def _page_name(storage_key: str, machine: str) -> str:
    return f"{safe_name(storage_key)}--{safe_name(machine)}.html"


def _anchor(case: str) -> str:
    return f"case-{safe_name(case)}"


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _summary(loaded: Loaded, reports: list[SeriesReport]) -> str:
    if not loaded.entries:
        return "Written from the history alone."
    first, last = loaded.entries[0], max(loaded.entries, key=lambda entry: entry["run"])
    return (f"Written from the history alone: {len(loaded.entries)} night(s) of {len(reports)} series, "
            f"from run <code>{_e(first['run'])}</code> to <code>{_e(last['run'])}</code> "
            f"(finished {_e(last['finished'])}).")


def _runs_section(runs: list[dict[str, Any]]) -> str:
    """Runs with no end recorded or interrupted: a killed run is worth seeing, with what it did not finish."""
    broken = [run for run in runs if run.get("state") in ("running", "interrupted")]
    if not broken:
        return ""
    items = []
    for run in broken:
        state = run["state"]
        why = "no end recorded: killed, or still running" if state == "running" else "interrupted"
        unfinished = run.get("unfinished") or []
        listed = "".join(f"<li><code>{_e(node)}</code></li>" for node in unfinished)
        items.append(
            f"<li><code>{_e(run['run'])}</code> {_e(run.get('storage_key'))} on {_e(run.get('machine'))}: "
            f'<span class="suspected">{_e(state)}</span> ({why}; last update {_e(run.get("updated"))}); '
            f"{len(run.get('finished') or {})} of {len(run.get('selected') or [])} case(s) finished, "
            f"{len(unfinished)} unfinished" + (f"<ul>{listed}</ul>" if listed else "") + "</li>")
    return "<h2>Unfinished runs</h2>\n<ul>\n" + "\n".join(items) + "\n</ul>"


def _damaged_section(loaded: Loaded) -> str:
    if not loaded.damaged:
        return ""
    items = "\n".join(f"<li><code>{_e(damaged.path.name)}</code>: {_e(damaged.describe())}</li>"
                      for damaged in loaded.damaged)
    return f"<h2>Damaged history files (skipped)</h2>\n<ul>\n{items}\n</ul>"


def _copy_image(report: SeriesReport, out: Path) -> tuple[str | None, str]:
    """The latest night's image copied under out/images: (relative link or None, text to show)."""
    entry = report.entries[-1]
    source = entry.get("image_path")
    if not source:
        return None, NO_IMAGE
    path = Path(source)
    if not path.is_file():
        # Images not kept with --sdperf-save-images are removed after the run.
        return None, f"image not kept: {source} is gone (run with --sdperf-save-images DIR)"
    suffix = path.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", path.suffix.lower()) else ""
    name = (f"{safe_name(f'{report.storage_key}--{report.machine}--{report.case}')}--"
            f"{safe_name(entry['run'])}{suffix}")
    (out / "images").mkdir(exist_ok=True)
    shutil.copyfile(path, out / "images" / name)
    return f"images/{name}", name


def _latest_table(reports: Iterable[SeriesReport], images: dict[int, tuple[str | None, str]], page: str) -> str:
    """One row per case: its newest night, the newest segment's change, the gate and the image."""
    rows = []
    for report in reports:
        entry = report.entries[-1]
        image, text = images[id(report)]
        outcome = _outcome(entry)
        rows.append(
            f'<tr><td class="case"><a href="{_e(page)}#{_anchor(report.case)}">{_e(report.case)}</a></td>'
            f"<td><code>{_e(entry['run'])}</code><br><span class=\"when\">{_e(entry.get('finished'))}</span></td>"
            f'<td class="num">{entry["median_s"]:.4f} s</td><td class="num">{len(entry["latencies_s"])}</td>'
            f'<td class="{_e(entry.get("status"))}">{_e(entry.get("status"))}</td>'
            f'<td class="{outcome}">{_OUTCOME_LABELS[outcome]}</td>'
            f"<td>{_newest_change(report)}</td>"
            f'<td class="{report.gate()}">{_GATE_TEXT.get(report.gate(), _e(report.gate()))}</td>'
            f"<td>{_image_cell(image, text)}</td></tr>")
    return ("<table>\n<tr><th>case</th><th>run</th><th>median</th><th>rounds</th><th>status</th>"
            "<th>vs baseline</th><th>change (newest segment)</th><th>gate</th><th>image</th></tr>\n"
            + "\n".join(rows) + "\n</table>")


def _image_cell(image: str | None, text: str) -> str:
    if not image:
        return f'<span class="note">{_e(text)}</span>'
    return f'<a href="{_e(image)}" title="{_e(text)}"><img class="thumb" src="{_e(image)}" alt="">image</a>'


def _outcome(entry: dict[str, Any]) -> str:
    outcome = ((entry.get("verdicts") or {}).get("baseline") or {}).get("latency", {}).get("outcome")
    return outcome if outcome in MARKERS else "none"


def _newest_change(report: SeriesReport) -> str:
    text = []
    if report.analysis.changes:
        change = report.analysis.changes[-1]
        text.append(f'<span class="{change.direction}">{change.ratio - 1:+.1%}</span> since '
                    f"<code>{_e(report.entries[change.index]['run'])}</code> (p={change.p_value:.2g})")
    suspected = report.analysis.suspected
    if suspected:
        text.append(f'<span class="suspected">newest night alone {suspected["ratio"] - 1:+.1%} '
                    f"({suspected['z']:.1f} noise units)</span>")
    return "; ".join(text) or '<span class="note">none</span>'


def _case_section(report: SeriesReport, image: tuple[str | None, str]) -> str:
    changes = []
    for change, found in zip(report.analysis.changes, report.changes_json()):
        what = ", ".join(found["what_changed"]) or "nothing recorded"
        changes.append(
            f'<li>from night {change.index + 1}, run <code>{_e(found["first_run"])}</code>: '
            f'<span class="{change.direction}">{change.ratio - 1:+.1%}</span> '
            f"(95% CI {change.ci_low - 1:+.1%} to {change.ci_high - 1:+.1%}, p={change.p_value:.2g}, "
            f"{change.before_nights} nights before, {change.after_nights} after); "
            f"changed that night: {_e(what)}</li>")
    changes_html = (f"<ul>{''.join(changes)}</ul>" if changes else '<p class="note">No confirmed change point.</p>')
    link, text = image
    picture = (f'<p class="image">Latest night\'s image: <a href="{_e(link)}"><img src="{_e(link)}" '
               f'alt="{_e(report.case)}, run {_e(report.entries[-1]["run"])}"></a></p>' if link
               else f'<p class="note">{_e(text)}</p>')
    return (f'<section class="case" id="{_anchor(report.case)}">\n<h3>{_e(report.case)}</h3>\n'
            f"{_plot_svg(report)}\n"
            f"<p>{len(report.entries)} night(s); {_e(report.noise.describe(report.threshold))}.</p>\n"
            f'<p>Gate: <span class="{report.gate()}">{_GATE_TEXT.get(report.gate(), _e(report.gate()))}</span>; '
            f"newest segment: {_newest_change(report)}.</p>\n"
            f"<h4>Change points</h4>\n{changes_html}\n{picture}\n</section>")


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return first, third


def _plot_svg(report: SeriesReport) -> str:
    """The series as inline SVG: medians, rounds' quartiles, segment levels, change lines, verdict markers."""
    try:
        # The Figure object alone: no pyplot, no backend switch, nothing global changes.
        from matplotlib.figure import Figure
    except ImportError:
        return "<p class=\"note\">The plot needs matplotlib: pip install 'sdperf[plot]'.</p>"
    entries = report.entries
    nights = list(range(1, len(entries) + 1))
    medians = [entry["median_s"] for entry in entries]
    spread = [_quartiles(list(entry["latencies_s"]) or [entry["median_s"]]) for entry in entries]
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots()
    axes.plot(nights, medians, color="tab:gray", linewidth=1, zorder=1)
    axes.errorbar(nights, medians, yerr=[[max(m - low, 0) for m, (low, _) in zip(medians, spread)],
                                         [max(high - m, 0) for m, (_, high) in zip(medians, spread)]],
                  fmt="none", ecolor="darkgray", capsize=3, zorder=2)
    bounds = [change.index for change in report.analysis.changes]
    for start, end in zip([0, *bounds], [*bounds, len(entries)]):
        level = statistics.median(medians[start:end])
        axes.hlines(level, start + 0.6, end + 0.4, colors="tab:purple", linestyles="dashed", linewidth=1.2,
                    zorder=1, label="segment level" if start == 0 else None)
    for change in report.analysis.changes:
        colour = "tab:red" if change.direction == "slower" else "tab:green"
        line = axes.axvline(change.index + 1, color=colour, linestyle=":", linewidth=1.5, zorder=0)
        line.set_gid(f"{_anchor(report.case)}-change-{change.index + 1}")
        label = axes.annotate(f"{change.ratio - 1:+.1%}", (change.index + 1, 1), xycoords=axes.get_xaxis_transform(),
                              xytext=(4, -14), textcoords="offset points", color=colour, fontweight="bold")
        label.set_gid(f"{_anchor(report.case)}-change-{change.index + 1}-label")
    for outcome, (marker, colour) in MARKERS.items():
        chosen = [i for i, entry in enumerate(entries) if _outcome(entry) == outcome]
        if chosen:
            axes.scatter([nights[i] for i in chosen], [medians[i] for i in chosen], marker=marker, color=colour,
                         zorder=3, label=f"vs baseline: {_OUTCOME_LABELS[outcome]}")
    suspected = report.analysis.suspected
    if suspected:
        at = suspected["index"]
        ring = axes.scatter([nights[at]], [medians[at]], s=260, facecolors="none", edgecolors="tab:orange",
                            linewidths=2, zorder=4, label=f"newest night suspected: {suspected['ratio'] - 1:+.1%}")
        ring.set_gid(f"{_anchor(report.case)}-suspected")
    axes.set_xlim(0.4, len(entries) + 0.6)
    axes.xaxis.get_major_locator().set_params(integer=True)
    first, last = entries[0].get("finished", "")[:10], entries[-1].get("finished", "")[:10]
    axes.set_xlabel(f"night (1 = {first}, {len(entries)} = {last})")
    axes.set_ylabel("seconds per image")
    axes.set_title(f"{report.title}: median of each night, bar = rounds' 1st to 3rd quartile", fontsize="medium")
    axes.grid(axis="y", color="#eee")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    figure.tight_layout()
    buffer = io.StringIO()
    # No metadata: matplotlib's default names http:// URIs (creator, Dublin Core type) in it.
    figure.savefig(buffer, format="svg", metadata={"Title": report.title, "Creator": None, "Date": None,
                                                   "Format": None, "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML

"""A case's latency across saved runs, as a PNG, with each run's verdict against its baseline."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from sdperf.storage.baselines import BaselineError, load_run, numbered_runs
from sdperf.storage.results import saved_latencies

# Marker per verdict outcome; "none" when the run was not compared.
MARKERS = {"slower": ("v", "tab:red"), "faster": ("^", "tab:green"), "same": ("o", "tab:blue"),
           "inconclusive": ("D", "tab:orange"), "none": ("o", "tab:gray")}


@dataclass(frozen=True)
class TrendPoint:
    run: str
    when: str
    median_s: float
    low_s: float  # first and third quartile of the rounds
    high_s: float
    outcome: str


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return first, third


def trend_points(storage: Path, case: str) -> list[TrendPoint]:
    """The case (test id or full test name) in every numbered run under `storage`, oldest first."""
    runs = numbered_runs(storage)
    if not runs:
        raise BaselineError(f"{storage}: no saved runs (NNNN_*.json) under it; run with --benchmark-autosave first")
    points = []
    for path in runs:
        document = load_run(path)
        for bench in document["benchmarks"]:
            if case not in (bench["fullname"], bench.get("param"), bench.get("name")):
                continue
            info = bench.get("extra_info", {})
            latencies = saved_latencies(info)
            if not latencies:
                continue
            low, high = _quartiles(latencies)
            verdict = info.get("verdicts", {}).get("baseline", {}).get("latency")
            points.append(TrendPoint(path.name, document["datetime"], statistics.median(latencies), low, high,
                                     verdict["outcome"] if verdict else "none"))
    if not points:
        raise BaselineError(f"{storage}: no saved run has case {case!r}; give a test id such as cpu-fp32")
    return points


def plot_trend(points: list[TrendPoint], case: str, out: Path) -> Path:
    """Write the PNG: median latency per run with its interquartile range, markers by verdict."""
    try:
        import matplotlib
    except ImportError:
        raise BaselineError("the trend plot needs matplotlib: pip install 'sdperf[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(max(6, 0.5 * len(points)), 4))
    positions = range(len(points))
    medians = [p.median_s for p in points]
    axes.plot(positions, medians, color="tab:gray", linewidth=1, zorder=1)
    axes.errorbar(positions, medians, yerr=[[p.median_s - p.low_s for p in points],
                                            [p.high_s - p.median_s for p in points]],
                  fmt="none", ecolor="lightgray", capsize=3, zorder=2)
    for outcome, (marker, colour) in MARKERS.items():
        chosen = [i for i, p in enumerate(points) if p.outcome == outcome]
        if chosen:
            axes.scatter(chosen, [medians[i] for i in chosen], marker=marker, color=colour, zorder=3,
                         label=outcome if outcome != "none" else "not compared")
    axes.set_xticks(list(positions), [p.run.split("_")[0] for p in points], rotation=45)
    axes.set_xlabel("saved run")
    axes.set_ylabel("latency per image, s (median, IQR)")
    axes.set_title(f"{case}: latency across runs")
    axes.legend(title="verdict vs baseline", fontsize="small")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    pyplot.close(figure)
    return out

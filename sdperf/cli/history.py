"""`sdperf history list|show|changes` and `sdperf dashboard`: the nightly history, read back."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _loaded(args: argparse.Namespace):
    from sdperf.storage.history import history_dir, load

    root, source = history_dir(args.history)
    if not root.is_dir():
        print(f"sdperf: no history in {root} ({source}): a run of the suite writes one; "
              "give another folder with --history DIR or SDPERF_HISTORY", file=sys.stderr)
        return None, root
    loaded = load(root)
    for damaged in loaded.damaged:
        print(f"sdperf: {damaged.describe()}", file=sys.stderr)
    return loaded, root


def _reports(loaded, profile=None, case=None):
    from sdperf.config.profiles import load_profiles
    from sdperf.reporting.history_report import analyse

    return analyse(loaded.entries, load_profiles(), profile=profile, case=case)


def _list(args: argparse.Namespace) -> int:
    loaded, root = _loaded(args)
    if loaded is None:
        return 1
    print(f"history: {root}")
    for run in loaded.runs:
        finished = run.get("finished") or {}
        line = (f"{run['run']}  {run.get('storage_key')}/{run.get('machine')}  {run['state']}  "
                f"{len(finished)} of {len(run.get('selected') or [])} case(s) finished, "
                f"{len(run.get('entries') or [])} kept")
        if run["state"] == "running":
            line += "  (no end recorded: killed, or still running)"
        print(line)
        for node in run.get("unfinished") or []:
            print(f"    unfinished: {node}")
    for report in _reports(loaded):
        print(f"{report.title}: {len(report.entries)} night(s); {report.noise.describe(report.threshold)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    loaded, _ = _loaded(args)
    if loaded is None:
        return 1
    reports = [r for r in _reports(loaded) if args.case in (r.case, *(e.get("test") for e in r.entries))]
    if not reports:
        known = sorted({entry["case"] for entry in loaded.entries})
        print(f"sdperf: case {args.case!r} has no history; cases with one: {', '.join(known) or 'none'}",
              file=sys.stderr)
        return 1
    if args.json:
        # One item per run (oldest first); a case kept on several machines or profiles lists each.
        print(json.dumps([{**_night(entry), "storage_key": report.storage_key, "machine": report.machine,
                           "case": report.case} for report in reports for entry in report.entries], indent=2))
        return 0
    for report in reports:
        print(f"{report.title} ({report.noise.describe(report.threshold)})")
        starts = {change.index: change for change in report.analysis.changes}
        for index, entry in enumerate(report.entries):
            mark = f"  <- change: {starts[index].ratio - 1:+.1%}" if index in starts else ""
            print(f"  {entry['run']}  median {entry['median_s']:.4f} s  {len(entry['latencies_s'])} round(s)  "
                  f"{entry['status']}{mark}")
    return 0


def _night(entry: dict) -> dict:
    return {"run": entry["run"], "finished": entry["finished"], "median_s": entry["median_s"],
            "latencies_s": entry["latencies_s"], "status": entry["status"],
            "lock_sha256": (entry.get("environment") or {}).get("lock_sha256"),
            "sdperf_commit": (entry.get("environment") or {}).get("sdperf_commit"),
            "model_sha256": entry.get("model_sha256"), "image_path": entry.get("image_path")}


def _changes(args: argparse.Namespace) -> int:
    loaded, _ = _loaded(args)
    if loaded is None:
        return 1
    reports = _reports(loaded, profile=args.profile)
    if args.json:
        print(json.dumps([change for report in reports for change in report.changes_json()], indent=2))
    else:
        for report in reports:
            found = report.changes_json()
            print(f"{report.title}: {len(report.entries)} night(s), {len(found)} change(s); "
                  f"{report.noise.describe(report.threshold)}")
            for change in found:
                print(f"  from {change['first_run']}: {change['ratio'] - 1:+.1%} "
                      f"(95% CI {change['ci_low'] - 1:+.1%} to {change['ci_high'] - 1:+.1%}, p={change['p_value']:.2g}, "
                      f"{change['nights_before']} nights before, {change['nights_after']} after); "
                      f"changed that night: {', '.join(change['what_changed']) or 'nothing recorded'}")
    return _gate(reports) if args.gate else 0


def _gate(reports) -> int:
    """Exit 1 when a series' newest segment is a confirmed slowdown; warn on a suspected one."""
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    failed = False
    for report in reports:
        verdict = report.gate()
        if verdict == "ok":
            continue
        if verdict == "slowdown":
            change = report.analysis.changes[-1]
            first = report.entries[change.index]["run"]
            text = (f"{report.title}: confirmed slowdown {change.ratio - 1:+.1%} since run {first} "
                    f"(p={change.p_value:.2g}, {change.after_nights} nights)")
            failed = True
        else:
            text = f"{report.title}: suspected slowdown: " + _suspicion(report)
        print(("::error::" if verdict == "slowdown" else "::warning::") + text if annotate else text, file=sys.stderr)
    return 1 if failed else 0


def _suspicion(report) -> str:
    suspected = report.analysis.suspected
    if suspected and suspected["direction"] == "slower":
        return f"the newest night alone is {suspected['ratio'] - 1:+.1%} ({suspected['z']:.1f} noise units)"
    change = report.analysis.changes[-1]
    return (f"{change.ratio - 1:+.1%} since run {report.entries[change.index]['run']}, not yet confirmed "
            f"(p={change.p_value:.2g} over {change.after_nights} nights)")


def _dashboard(args: argparse.Namespace) -> int:
    from sdperf.reporting.dashboard import write_dashboard

    loaded, _ = _loaded(args)
    if loaded is None:
        return 1
    index = write_dashboard(_reports(loaded), loaded, Path(args.out))
    print(f"wrote {index}")
    return 0


def add_commands(commands) -> None:
    history = commands.add_parser("history", help="the nightly history this machine kept: runs, series, change points")
    history_commands = history.add_subparsers(dest="history_command", required=True)

    def with_folder(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--history", help="history folder (default: SDPERF_HISTORY, else the user's data folder)")
        return parser

    listing = with_folder(history_commands.add_parser("list", help="runs (finished, unfinished cases) and series"))
    listing.set_defaults(run=_list)
    show = with_folder(history_commands.add_parser("show", help="one case's nights"))
    show.add_argument("case", help="case id (cpu-fp32) or full test id")
    show.add_argument("--json", action="store_true", help="print the series as JSON")
    show.set_defaults(run=_show)
    changes = with_folder(history_commands.add_parser("changes", help="where each case's series shifted, and why"))
    changes.add_argument("--profile", help="only this profile's series (pi5: the board's own runs; emulated-pi5 "
                         "and ab-pi5, the dependency gate's A/B runs, are kept and chosen apart)")
    changes.add_argument("--json", action="store_true", help="print the changes as a JSON list")
    changes.add_argument("--gate", action="store_true",
                         help="exit 1 when a series' newest segment is a confirmed slowdown (the nightly's gate)")
    changes.set_defaults(run=_changes)
    dashboard = with_folder(commands.add_parser("dashboard", help="a static HTML site of the history"))
    dashboard.add_argument("--out", required=True, help="folder to write the site into")
    dashboard.set_defaults(run=_dashboard)

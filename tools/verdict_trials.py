"""Measures how often verdicts raise false alarms and catch a known 10% slowdown, end to end.

Each trial is a real pytest run of the suite (fresh workers, the cpu profile's default
rounds, the built-in model); the slowdown comes from the test-only recipe
`testonly_slowdown` (SDPERF_TESTONLY_SLOWDOWN). Two designs:

  stored       runs U0 S1 U2 S3 ... alternate unchanged (0%) and slowed (10%); each run is
               compared with the unchanged run before it through --benchmark-compare:
               U->U pairs count false alarms, U->S pairs count detections.
  interleaved  each run times fp32 and testonly_slowdown, each alternately with an fp32
               control worker (--sdperf-interleave): fp32 vs its control counts false
               alarms, the slowed case vs its control counts detections.

Usage: python tools/verdict_trials.py {stored,interleaved} TRIALS OUT_DIR
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(out: Path, recipes: str, slowdown: float, *extra: str) -> dict:
    environment = {**os.environ, "SDPERF_TESTONLY_SLOWDOWN": str(slowdown)}
    command = [sys.executable, "-m", "pytest", "perf/test_latency.py", "-p", "no:cacheprovider", "-q",
               "--sdperf-profile", "cpu", "--sdperf-recipes", recipes, "--sdperf-progress", "0",
               "--benchmark-json", str(out), *extra]
    finished = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    if not out.is_file():
        raise SystemExit(f"run failed without results ({finished.returncode}):\n{finished.stdout[-3000:]}")
    return json.loads(out.read_text())


def verdict_of(document: dict, case: str, against: str) -> dict | None:
    for bench in document["benchmarks"]:
        if bench["param"] == case:
            return bench["extra_info"]["verdicts"].get(against, {}).get("latency")
    return None


def stored(trials: int, folder: Path) -> dict:
    outcomes: dict[str, list[str]] = {"unchanged": [], "slowed": []}
    previous_path = folder / "run-00-U.json"
    run_suite(previous_path, "testonly_slowdown", 0.0)
    for index in range(1, 2 * trials + 1):
        slowed = index % 2 == 1
        path = folder / f"run-{index:02d}-{'S' if slowed else 'U'}.json"
        document = run_suite(path, "testonly_slowdown", 0.10 if slowed else 0.0,
                             f"--benchmark-compare={previous_path}")
        verdict = verdict_of(document, "cpu-testonly_slowdown", "baseline")
        outcomes["slowed" if slowed else "unchanged"].append(verdict["outcome"])
        print(index, "slowed" if slowed else "unchanged", verdict["outcome"], f"{verdict['ratio']:.3f}", flush=True)
        if not slowed:
            previous_path = path
    return outcomes


def interleaved(trials: int, folder: Path) -> dict:
    outcomes: dict[str, list[str]] = {"unchanged": [], "slowed": []}
    for index in range(trials):
        document = run_suite(folder / f"run-{index:02d}.json", "fp32,testonly_slowdown", 0.10, "--sdperf-interleave")
        same = verdict_of(document, "cpu-fp32", "control")
        slowed = verdict_of(document, "cpu-testonly_slowdown", "control")
        outcomes["unchanged"].append(same["outcome"])
        outcomes["slowed"].append(slowed["outcome"])
        print(index, f"A/A {same['outcome']} {same['ratio']:.3f}", f"10% {slowed['outcome']} {slowed['ratio']:.3f}",
              flush=True)
    return outcomes


def main() -> None:
    design, trials, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = {"stored": stored, "interleaved": interleaved}[design](trials, folder)
    false_alarms = sum(o == "slower" for o in outcomes["unchanged"])
    detections = sum(o == "slower" for o in outcomes["slowed"])
    summary = {
        "design": design,
        "trials": trials,
        "false_alarms": f"{false_alarms}/{len(outcomes['unchanged'])}",
        "detections": f"{detections}/{len(outcomes['slowed'])}",
        "outcomes": outcomes,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""A rehearsal of the nightly history: NIGHTS separate runs of the cpu profile's fp32 case on
the built-in model into one history folder, slowed by SLOWDOWN (a fraction) from night
SLOW_FROM on, then `sdperf history changes` on it. Passes when the one change found starts at
night SLOW_FROM +- 1 and nothing else is found; prints the learned noise and what this
machine can detect.

The slowdown is test-only and planted outside everything the history records (no package,
commit or model changes): a `sitecustomize` on PYTHONPATH, which the workers inherit
(--sdperf-inherit-env PYTHONPATH), makes StableDiffusionPipeline.__call__ sleep SLOWDOWN
times its own duration. The change must be found from the timings alone.

Usage: python tools/history_rehearsal.py HISTORY_DIR [NIGHTS=20] [SLOW_FROM=13] [SLOWDOWN=0.20] [ROUNDS WORKERS]
(ROUNDS and WORKERS default to the cpu profile's run size on the built-in model.)
Run it alone: another process on these cores would be a slowdown of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = '''
import functools, importlib.abc, importlib.util, os, sys, time

FRACTION = float(os.environ["SDPERF_REHEARSAL_SLOWDOWN"])
TARGET = "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion"


def _patch(module):
    original = module.StableDiffusionPipeline.__call__

    @functools.wraps(original)  # the workload is checked against the call's signature
    def slowed(self, *args, **kwargs):
        started = time.perf_counter()
        result = original(self, *args, **kwargs)
        time.sleep(FRACTION * (time.perf_counter() - started))
        return result

    module.StableDiffusionPipeline.__call__ = slowed


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
'''


def one_night(history: Path, night: int, slowdown: float, rounds: int, workers: int, plant: Path) -> tuple[int, float]:
    environment = {**os.environ, "SDPERF_HISTORY": str(history)}
    extra = []
    size = [f"--sdperf-rounds={rounds}", f"--sdperf-workers={workers}"] if rounds else []
    if slowdown:
        environment.update(PYTHONPATH=str(plant), SDPERF_REHEARSAL_SLOWDOWN=str(slowdown))
        extra = ["--sdperf-inherit-env", "PYTHONPATH,SDPERF_REHEARSAL_SLOWDOWN"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "perf/test_latency.py", "-m", "cpu", "--sdperf-recipes", "fp32",
         *size, "--sdperf-progress=0", "-q", "-p", "no:cacheprovider",
         *extra],
        cwd=ROOT, env=environment, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"night {night} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return done.returncode, time.perf_counter() - started


def main() -> int:
    history = Path(sys.argv[1]).resolve()
    nights, slow_from = (int(sys.argv[2]) if len(sys.argv) > 2 else 20), (int(sys.argv[3]) if len(sys.argv) > 3 else 13)
    slowdown = float(sys.argv[4]) if len(sys.argv) > 4 else 0.20
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # 0: the profile's own run size
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    if history.exists() and any(history.iterdir()):
        raise SystemExit(f"{history} is not empty: give a new folder (the rehearsal's nights must be its only ones)")
    plant = Path(tempfile.mkdtemp(prefix="sdperf-rehearsal-"))
    (plant / "sitecustomize.py").write_text(SITECUSTOMIZE)
    total = time.perf_counter()
    for night in range(1, nights + 1):
        _, seconds = one_night(history, night, slowdown if night >= slow_from else 0.0, rounds, workers, plant)
        print(f"night {night:2d}{' (slowed)' if night >= slow_from else '         '}: run took {seconds:.0f} s",
              flush=True)
    print(f"{nights} nights in {time.perf_counter() - total:.0f} s\n")

    def sdperf(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sdperf.cli", *args, "--history", str(history)],
                              cwd=ROOT, capture_output=True, text=True)

    shown = json.loads(sdperf("history", "show", "cpu-fp32", "--json").stdout)
    for index, item in enumerate(shown, start=1):
        print(f"night {index:2d}  {item['run']}  median {item['median_s']:.4f} s")
    print(sdperf("history", "changes").stdout)
    changes = json.loads(sdperf("history", "changes", "--json").stdout)
    runs = [item["run"] for item in shown]
    found = [runs.index(change["first_run"]) + 1 for change in changes]
    print(f"changes found at night(s) {found}; planted at night {slow_from}")
    ok = len(found) == 1 and abs(found[0] - slow_from) <= 1
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""A worker's first-time work (building a built-in model, measuring the GEMM peak) runs in a
child process: the worker keeps none of its memory, so the first run after a new model or
torch reads as hungry as the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Stands in for a worker: the work itself is refused in this process, so only a child can do
# it; resident memory is read around each call.
AS_A_WORKER = r"""
import json, sys
from pathlib import Path

import diffusers, torch

import sdperf.models.build
from sdperf.worker import aside, roofline

def refused(*args, **kwargs):
    raise AssertionError("first-time work ran inside the worker")

roofline._measure_gemm = sdperf.models.build.build = refused

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

cache, found = Path(sys.argv[1]), {}
before = rss_mib()
found["peak"] = [aside.gemm_peak("float32", "cpu", 2, cache) for _ in range(2)]
found["model"] = [list(map(str, aside.builtin_model("tiny-sd15"))) for _ in range(2)]
found["grew_mib"] = rss_mib() - before
print(json.dumps(found))
"""


def test_first_time_work_runs_in_a_child_that_takes_its_memory_with_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", AS_A_WORKER, str(cache)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "SDPERF_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    (measured, cached) = found["peak"]
    assert measured["peak_flops"] > 0 and not measured["cached"], measured
    assert cached == {**measured, "cached": True}
    assert len(list((cache / "gemm-peak").glob("*.json"))) == 1
    (built, reused) = found["model"]
    assert built[1] == "True" and reused == [built[0], "False"]
    assert (Path(built[0]) / "sdperf-build.json").is_file()
    # Measured in the worker itself the GEMM peak alone kept 77 MiB resident here.
    assert found["grew_mib"] < 16, found

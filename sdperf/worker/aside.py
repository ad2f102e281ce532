"""First-time work of a worker, done in a process of its own: building a built-in model, and
measuring the host's GEMM peak for the roofline.

Both run once per cache (a new host, model or torch version) and both leave memory behind in
the process that did them: freed heap the allocator keeps, BLAS packing buffers, an OpenMP
pool sized for every core. Inside a worker, its peak RSS for the rest of its life carried it
(+50 MiB here from the GEMM measurement alone, over a 560 MiB worker), so the first run after
a torch upgrade read as hungrier than the next, and an A/B run whose side B measured first
blamed B. A child of the worker does the work, with the worker's interpreter, environment and
CPU affinity, and exits before the worker loads anything; it shares the worker's process
group, so a case's timeout kills it too.

`python -m sdperf.worker.aside build-model NAME` and `... gemm-peak DTYPE DEVICE CORES CACHE`
print one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class AsideFailed(RuntimeError):
    """The child process failed; the message carries its last words."""


def _run(*arguments: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "sdperf.worker.aside", *arguments]
    # The child's stderr is the worker's: its messages land in the case's log.
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AsideFailed(f"`{' '.join(command[2:])}` exited with {done.returncode} (its output is in the case's log)")
    return json.loads(lines[-1])


def builtin_model(name: str) -> tuple[Path, bool]:
    """The built-in model's folder, built by a child first when the cache lacks it: (folder, built now)."""
    from sdperf.models.store import READY_MARKER, builtin_folder

    folder = builtin_folder(name)
    if (folder / READY_MARKER).is_file():
        return folder, False
    found = _run("build-model", name)
    return Path(found["path"]), found["built"]


def gemm_peak(dtype: str, device: str, cores: int, cache: Path) -> dict[str, Any]:
    """The host's GEMM peak (sdperf.worker.roofline.gemm_peak), measured by a child when not cached."""
    from sdperf.worker import roofline

    cached = roofline.cached_gemm_peak(dtype, device, cores, cache)
    if cached is not None:
        return cached
    return _run("gemm-peak", dtype, device, str(cores), str(cache))


def main(argv: list[str]) -> int:
    if argv[:1] == ["build-model"] and len(argv) == 2:
        from sdperf.models.build import ensure_builtin

        path, built = ensure_builtin(argv[1])
        print(json.dumps({"path": str(path), "built": built}), flush=True)
        return 0
    if argv[:1] == ["gemm-peak"] and len(argv) == 5:
        from sdperf.worker import roofline

        print(json.dumps(roofline.gemm_peak(argv[1], argv[2], int(argv[3]), Path(argv[4]))), flush=True)
        return 0
    print(f"usage: python -m sdperf.worker.aside build-model NAME | gemm-peak DTYPE DEVICE CORES CACHE; got {argv}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Pipeline transforms named by recipes, applied in the worker after loading.

Each transform receives the loaded pipeline and the case, returns the pipeline to
run, and a dict of facts that prove it took effect (recorded with the result).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Transform = Callable[[Any, dict], tuple[Any, dict]]

def dpm_solver(pipe: Any, case: dict) -> tuple[Any, dict]:
    from diffusers import DPMSolverMultistepScheduler

    replaced = type(pipe.scheduler).__name__
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    return pipe, {"scheduler": type(pipe.scheduler).__name__, "replaced": replaced}


def testonly_slowdown(pipe: Any, case: dict) -> tuple[Any, dict]:
    """A known regression for measuring verdicts: each call sleeps `factor` times its own duration."""
    import functools
    import os
    import time

    raw = os.environ.get("SDPERF_TESTONLY_SLOWDOWN", "0.10")
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"SDPERF_TESTONLY_SLOWDOWN={raw!r} must be a number, e.g. 0.10 for 10% slower") from None
    if not 0 <= factor <= 10:
        raise ValueError(f"SDPERF_TESTONLY_SLOWDOWN={raw!r} must lie between 0 and 10")
    plain_call = type(pipe).__call__

    @functools.wraps(plain_call)  # keeps the signature the worker inspects
    def slowed_call(self, *args, **kwargs):
        started = time.perf_counter()
        output = plain_call(self, *args, **kwargs)
        time.sleep((time.perf_counter() - started) * factor)
        return output

    # `pipe(...)` looks __call__ up on the class, so the instance gets a subclass of its own.
    pipe.__class__ = type(type(pipe).__name__, (type(pipe),), {"__call__": slowed_call})
    return pipe, {"slowdown": factor}


TRANSFORMS: dict[str, Transform] = {"dpm_solver": dpm_solver, "testonly_slowdown": testonly_slowdown}


def apply(name: str | None, pipe: Any, case: dict) -> tuple[Any, dict]:
    if name is None:
        return pipe, {}
    try:
        transform = TRANSFORMS[name]
    except KeyError:
        raise ValueError(f"transform {name!r} is unknown; known: {', '.join(sorted(TRANSFORMS)) or 'none'}") from None
    return transform(pipe, case)

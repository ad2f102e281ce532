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


TRANSFORMS: dict[str, Transform] = {"dpm_solver": dpm_solver}


def apply(name: str | None, pipe: Any, case: dict) -> tuple[Any, dict]:
    if name is None:
        return pipe, {}
    try:
        transform = TRANSFORMS[name]
    except KeyError:
        raise ValueError(f"transform {name!r} is unknown; known: {', '.join(sorted(TRANSFORMS)) or 'none'}") from None
    return transform(pipe, case)

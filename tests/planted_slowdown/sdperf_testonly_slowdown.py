"""TEST ONLY: a regression planted in one environment of an A/B test (tests/test_ab.py).

Installed with a .pth file, so it runs at every interpreter start in that
environment. When diffusers' DPM-Solver++ scheduler module is imported, its
`step` is wrapped to sleep a fraction of the time since the previous step of the
same generation (the UNet's time): the dpm_solver case gets slower, cases with
another scheduler do not.
"""

import importlib.abc
import importlib.util
import sys
import time

TARGET = "diffusers.schedulers.scheduling_dpmsolver_multistep"
FRACTION = 0.25


def _patch(module) -> None:
    scheduler = module.DPMSolverMultistepScheduler
    original_step, original_set_timesteps = scheduler.step, scheduler.set_timesteps
    last = {"end": None}

    def set_timesteps(self, *args, **kwargs):
        last["end"] = None  # a new generation: nothing to measure against yet
        return original_set_timesteps(self, *args, **kwargs)

    def step(self, *args, **kwargs):
        if last["end"] is not None:
            time.sleep(FRACTION * (time.perf_counter() - last["end"]))
        try:
            return original_step(self, *args, **kwargs)
        finally:
            last["end"] = time.perf_counter()

    scheduler.set_timesteps, scheduler.step = set_timesteps, step


class _Planter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # once: find the real module, then wrap its execution
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                _patch(module)

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Planter())

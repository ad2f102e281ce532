"""A benchmark case: one profile, one recipe, one model, and how to run it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdperf.models.store import ModelSpec
from sdperf.profiles import Profile, RunSize, Workload
from sdperf.recipes import Recipe

# Read by native libraries at process start: a case's value must reach a fresh
# process, and a value inherited from the user's shell must not leak in unseen.
PROCESS_START_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOMP_CPU_AFFINITY",
    "OMP_PROC_BIND",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "LD_PRELOAD",
    "MALLOC_CONF",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
)


@dataclass(frozen=True)
class Case:
    profile: str
    recipe: str
    model: ModelSpec
    workload: Workload
    run: RunSize
    transform: str | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)
    command_prefix: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.profile}-{self.recipe}"

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "recipe": self.recipe,
            "model": self.model.to_json(),
            "workload": self.workload.to_json(),
            "run": dataclasses.asdict(self.run),
            "transform": self.transform,
            "env": dict(self.env),
            "command_prefix": list(self.command_prefix),
        }

    def worker_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the worker starts with: the caller's, minus its process-start
        variables, plus the case's (profile, then recipe)."""
        environ = dict(os.environ if base is None else base)
        for name in PROCESS_START_VARIABLES:
            environ.pop(name, None)
        for name, value in self.env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        environ.setdefault("HF_HUB_OFFLINE", "1")
        environ["PYTHONUNBUFFERED"] = "1"
        return environ


def make_case(profile: Profile, recipe: Recipe, model: ModelSpec, run_override: Mapping[str, Any]) -> Case:
    run = profile.run_size_for(model.builtin)
    if run_override:
        run = dataclasses.replace(run, **run_override)
    env: dict[str, str | None] = dict(profile.env)
    env.update(recipe.env)
    return Case(
        profile=profile.name,
        recipe=recipe.name,
        model=model,
        workload=profile.workload_for(model.builtin),
        run=run,
        transform=recipe.transform,
        env=env,
    )

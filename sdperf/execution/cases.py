"""A benchmark case: one profile, one recipe, one model, and how to run it.

`make_case` turns a profile and a recipe into concrete process settings for this
machine (placeholders filled, libraries and the pinning command found) and into the
expectations the worker's report is checked against (`sdperf.judging.proof`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdperf.config.profiles import Profile, RunSize, Workload
from sdperf.config.recipes import ALLOCATORS, THREAD_VARIABLES, Recipe
from sdperf.models.store import SYNTHETIC_NOTE, ModelSpec, cache_root

# What a worker inherits from the parent's environment: only what it needs to run at all
# (as pyperf's workers do). Everything else, OMP_WAIT_POLICY, KMP_*, PYTORCH_*, PYTHONPATH
# among them, stays out unless the case sets it or the user names it (--sdperf-inherit-env);
# the worker records its whole environment, so whatever it ran with is on file.
INHERITED_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
    "LD_LIBRARY_PATH", "VIRTUAL_ENV", "XDG_CACHE_HOME", "SDPERF_CACHE",
    "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
)


@dataclass(frozen=True)
class Case:
    profile: str
    recipe: str
    model: ModelSpec
    workload: Workload
    run: RunSize
    transforms: tuple[str, ...] = ()
    env: Mapping[str, str | None] = field(default_factory=dict)
    command_prefix: tuple[str, ...] = ()
    loader: str = "diffusers"
    load_dtype: str | None = None
    drop_components: tuple[str, ...] = ()
    quantize: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"
    # The recipe's own Python environment (`sdperf env create NAME`); None: this one.
    python_env: str | None = None
    # What the worker must report for the case's settings to count as in force (sdperf.judging.proof).
    expect: Mapping[str, Any] = field(default_factory=dict)
    # Variables the user chose to pass through beyond INHERITED_VARIABLES.
    inherit_env: tuple[str, ...] = ()
    # How this host changes the case's settings, said in its results (a profile's thread counts capped).
    notes: tuple[str, ...] = ()
    # The host's physical cores the suite may use: the roofline's peak is measured with them all.
    cores: int = 1

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
            "transforms": list(self.transforms),
            "env": dict(self.env),
            "command_prefix": list(self.command_prefix),
            "loader": self.loader,
            "load_dtype": self.load_dtype,
            "drop_components": list(self.drop_components),
            "quantize": dict(self.quantize),
            "device": self.device,
            "python_env": self.python_env,
            "expect": dict(self.expect),
            "inherit_env": list(self.inherit_env),
            "notes": list(self.notes),
            "cores": self.cores,
        }

    def worker_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the worker starts with: the allow-listed part of the caller's
        (INHERITED_VARIABLES and `inherit_env`), plus the case's (profile, then recipe)."""
        parent = os.environ if base is None else base
        passed = set(INHERITED_VARIABLES) | set(self.inherit_env)
        # sdperf's own variables (SDPERF_*) are meant for its workers.
        environ = {name: value for name, value in parent.items() if name in passed or name.startswith("SDPERF_")}
        for name, value in self.env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        environ.setdefault("HF_HUB_OFFLINE", "1")
        environ["PYTHONUNBUFFERED"] = "1"
        return environ


def fill_placeholders(value: str | None, cores: int) -> str | None:
    if value is None:
        return None
    return value.replace("{cores}", str(cores)).replace("{cache}", str(cache_root()))


def pinning_command(cpus: int, which=shutil.which) -> tuple[str, ...]:
    """numactl over CPUs 0..cpus-1 (as the Xeon report), else taskset; () when neither exists."""
    span = f"0-{cpus - 1}"
    if which("numactl"):
        return ("numactl", "-C", span)
    if which("taskset"):
        return ("taskset", "-c", span)
    return ()


def recipe_environment(recipe: Recipe, cores: int) -> dict[str, str | None]:
    """The recipe's own variables, placeholders filled and libraries preloaded."""
    from sdperf.host.devices import find_library

    env = {name: fill_placeholders(value, cores) for name, value in recipe.env.items()}
    if recipe.preload:
        env["LD_PRELOAD"] = ":".join(find_library(soname) or soname for soname in recipe.preload)
    return env


def expectations(
    recipe: Recipe, env: Mapping[str, str | None], own: Mapping[str, str | None], command_prefix: tuple[str, ...],
    cores: int, cpus: int,
) -> tuple[dict, list[str]]:
    """What the worker must report for every setting the case starts with (the profile's and
    the recipe's) to be in force, and notes on how this host changes them.

    A profile's thread counts describe its board: where this process may use fewer CPUs
    (an emulated profile, or CPUs taken away), torch and BLAS cap their pools at the CPUs they
    find, so the proof expects the capped count and the case says so. A recipe's own thread
    counts are what it measures: above the CPUs it cannot run (`sdperf.host.capabilities`)."""
    expect: dict[str, Any] = {}
    notes: list[str] = []
    threads = {name: int(value) for name, value in env.items() if name in THREAD_VARIABLES and value}
    if threads:
        expect["threads"] = threads
    capped = {name: cpus for name, count in threads.items() if count > cpus and name not in own}
    if capped:
        expect["capped"] = capped
        notes.extend(
            f"{name}={threads[name]} (profile setting) on {cpus} CPUs: x86 torch runs {cpus} threads, "
            f"aarch64 torch {threads[name]}"
            for name in sorted(capped)
        )
    unset = sorted(name for name, value in env.items() if name in THREAD_VARIABLES and value is None)
    if unset:
        expect["unset"] = unset
    # Every other variable the case sets or removes must reach the worker as asked.
    others = {name: value for name, value in env.items()
              if name not in THREAD_VARIABLES and name not in ("LD_PRELOAD", "MALLOC_CONF")}
    if others:
        expect["environment"] = others
    if recipe.preload:
        expect["allocators"] = [ALLOCATORS[soname] for soname in recipe.preload]
    if "MALLOC_CONF" in env:
        expect["malloc_conf"] = env["MALLOC_CONF"]
    if recipe.pin_cores:
        expect["cpus"] = list(range(cores))
        expect["pinned_by"] = command_prefix[0] if command_prefix else None
    if recipe.loader.startswith("openvino"):
        expect["openvino_precision"] = "f32"
    if recipe.loader == "openvino_static":
        expect["static_shape"] = True
    return expect, notes


def make_case(
    profile: Profile,
    recipe: Recipe,
    model: ModelSpec,
    run_override: Mapping[str, Any],
    cores: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    cpus: int | None = None,
    inherit_env: tuple[str, ...] = (),
) -> Case:
    from sdperf.host.capabilities import usable_cores, usable_cpus

    cores = usable_cores() if cores is None else cores
    cpus = usable_cpus() if cpus is None else cpus
    run = profile.run_size_for(model.scaled_down)
    if run_override:
        run = dataclasses.replace(run, **run_override)
    own = recipe_environment(recipe, cores)
    env: dict[str, str | None] = dict(profile.env)
    env.update(own)
    env.update(extra_env or {})
    command_prefix = pinning_command(cores) if recipe.pin_cores else ()
    expect, notes = expectations(recipe, env, own, command_prefix, cores, cpus)
    if model.synthetic_full_size:
        notes.append(f"model builtin:{model.name}: {SYNTHETIC_NOTE}")
    return Case(
        profile=profile.name,
        recipe=recipe.name,
        model=model,
        workload=profile.workload_for(model.scaled_down),
        run=run,
        transforms=recipe.transforms,
        env=env,
        command_prefix=command_prefix,
        loader=recipe.loader,
        load_dtype=recipe.load_dtype,
        drop_components=recipe.drop_components,
        quantize=dict(recipe.quantize),
        device=recipe.device,
        python_env=recipe.needs.python_env,
        expect=expect,
        inherit_env=tuple(inherit_env),
        notes=tuple(notes),
        cores=cores,
    )

"""Can a recipe run here? Decided in the pytest process before any worker starts.

Import-light (no torch): installed packages come from importlib.metadata,
libraries from the usual system folders, commands from PATH, CPU flags and GPUs
from host detection. Every unmet need becomes one skip reason that names what is
missing and how to get it.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sdperf.config.recipes import Recipe

# Debian package of each shared library a recipe may preload.
DEBIAN_PACKAGES = {"libjemalloc.so.2": "libjemalloc2", "libtcmalloc_minimal.so.4": "libtcmalloc-minimal4"}
INSTALL_HINTS = {
    "openvino": "pip install -c constraints.txt -e '.[openvino]'",
    "optimum-intel": "pip install -c constraints.txt -e '.[openvino]'",
    "torchao": "pip install torchao (a release built for this torch version)",
}
PYTHON_ENV_CONTENTS = {"ipex": "torch 2.8.* and intel-extension-for-pytorch 2.8.* (IPEX needs its torch minor version)"}


@functools.cache
def usable_cores() -> int:
    """Physical cores this process may run on: what "{cores}" means for recipes off the Pi."""
    from sdperf.host.cpu import read_cpu

    allowed = len(os.sched_getaffinity(0))
    physical = read_cpu(Path("/")).physical_cores or allowed
    return max(1, min(physical, allowed))


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class HostFacts:
    """What the needs are checked against; tests build it by hand."""

    cpu_flags: frozenset[str]
    gpus: tuple[str, ...]  # NVIDIA GPU names
    cpus: int  # CPUs this process may run on
    library: Callable[[str], str | None]  # soname -> path, or None
    command: Callable[[str], str | None]  # name -> path on PATH, or None
    package: Callable[[str], str | None]  # distribution -> version, or None
    python_env: Callable[[str], Path | None]  # name -> interpreter of a created environment


def host_facts(host, python_env: Callable[[str], Path | None]) -> HostFacts:
    """Facts of this machine; `host` is `sdperf.host.detection.HostInfo` (its CPU flags and GPUs),
    `python_env` finds a dedicated environment's interpreter (`sdperf.execution.environments`)."""
    from sdperf.host.devices import find_library

    return HostFacts(
        cpu_flags=host.cpu.flags,
        gpus=tuple(gpu.name for gpu in host.gpus),
        cpus=usable_cpus(),
        library=find_library,
        command=shutil.which,
        package=installed_version,
        python_env=python_env,
    )


def unmet_for(case, facts: HostFacts) -> str | None:
    """Why `case` (a `sdperf.execution.cases.Case`) cannot run its recipe here, or None."""
    from sdperf.config.recipes import REGISTRY

    # A profile's counts above this host's CPUs run capped (and say so); a recipe's must fit.
    capped = case.expect.get("capped", {})
    threads = {name: count for name, count in case.expect.get("threads", {}).items() if name not in capped}
    return unmet(REGISTRY[case.recipe], threads, facts)


def unmet(recipe: Recipe, threads: Mapping[str, int], facts: HostFacts) -> str | None:
    """Why `recipe` cannot run exactly as it claims here (the first reason), or None.

    `threads` are the thread counts the recipe sets (placeholders filled in): a count
    above the CPUs this process may use could not take effect (torch caps its pool).
    """
    needs = recipe.needs
    name = recipe.name
    for distribution in needs.packages:
        if facts.package(distribution) is None:
            hint = INSTALL_HINTS.get(distribution, f"pip install {distribution}")
            return f"recipe {name} needs the Python package {distribution}, which is not installed; install it: {hint}"
    for soname in needs.libraries:
        if facts.library(soname) is None:
            package = DEBIAN_PACKAGES.get(soname, soname)
            return (
                f"recipe {name} needs {soname}, which is not in the system library folders; "
                f"install it: sudo apt-get install {package} (or `make system-packages`)"
            )
    if needs.any_command and not any(facts.command(command) for command in needs.any_command):
        return f"recipe {name} needs one of the commands {', '.join(needs.any_command)} on PATH; none is there"
    if needs.cpu_flags_any and not facts.cpu_flags & set(needs.cpu_flags_any):
        return f"recipe {name} needs a CPU with {' or '.join(needs.cpu_flags_any)}; this CPU's flags have none of them"
    if needs.cuda:
        if not facts.gpus:
            return f"recipe {name} needs an NVIDIA GPU with CUDA; nvidia-smi finds none on this machine"
        torch_version = facts.package("torch") or ""
        if torch_version.endswith("+cpu"):
            return f"recipe {name} needs a CUDA build of torch; this one is {torch_version} (CPU only)"
    if needs.python_env and facts.python_env(needs.python_env) is None:
        contents = PYTHON_ENV_CONTENTS.get(needs.python_env, "its pinned packages")
        return (
            f"recipe {name} runs in its own Python environment '{needs.python_env}' ({contents}), "
            f"which does not exist yet; create it once with: sdperf env create {needs.python_env}"
        )
    for variable, count in threads.items():
        if count > facts.cpus:
            return (
                f"recipe {name} sets {variable}={count}, but this process may use only {facts.cpus} CPUs: "
                "x86 torch and BLAS cap their pools there, aarch64 torch oversubscribes them; either way it "
                "would not measure what the recipe means"
            )
    return None

"""Virtual environments built with uv, from the package sources pip is configured with.

uv unpacks each wheel once into its cache and links it into every environment after
that: an environment of the full stack takes about 15 s from a warm cache, most of it
compiling bytecode, where pip unpacked torch again each time (about 90 s here). uv reads
no pip configuration, so the sources and limits pip is set up with (a mirror, a local
wheel folder holding the CPU build of torch, a constraint file) are handed to it here:
both install from the same places, and an environment holds what pip would have chosen.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# pip config key -> uv option. Every value may list several, separated by whitespace, as in pip.
_PIP_TO_UV = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# Later sections win, as in pip: a `[install]` section over `[global]`, PIP_* variables over both.
_SECTION_ORDER = ("global", "install", ":env:")


def uv_binary() -> str:
    """The uv executable of the `uv` package (a declared dependency of sdperf)."""
    from uv import find_uv_bin

    return find_uv_bin()


def parse_pip_config(listing: str) -> dict[str, list[str]]:
    """`pip config list` output -> {key: values} for the keys uv is given, highest precedence kept."""
    chosen: dict[str, tuple[int, list[str]]] = {}
    for line in listing.splitlines():
        name, _, raw = line.partition("=")
        section, _, key = name.rpartition(".")
        if key not in _PIP_TO_UV or section not in _SECTION_ORDER or not raw:
            continue
        value = ast.literal_eval(raw)  # pip prints each value as a Python string literal
        rank = _SECTION_ORDER.index(section)
        if key not in chosen or rank >= chosen[key][0]:
            chosen[key] = (rank, value.split())
    return {key: values for key, (_, values) in chosen.items()}


def pip_sources(python: str = sys.executable) -> list[str]:
    """uv options for the package sources and constraints pip is configured with for `python`.
    `unsafe-best-match` is pip's own rule across sources: the best version wherever it lies
    (a local `+cpu` build of torch beats the CUDA one of the same version on PyPI)."""
    options = ["--index-strategy", "unsafe-best-match"]
    done = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True)
    if done.returncode != 0 and "No module named pip" in done.stderr:
        return options  # no pip here, so no pip configuration to follow: uv's own settings apply
    done.check_returncode()
    for key, values in parse_pip_config(done.stdout).items():
        for value in values:
            options += [_PIP_TO_UV[key], value]
    return options


def build_environment(folder: Path, installs: Sequence[Sequence[str]], python: str = sys.executable) -> Path:
    """A fresh virtual environment in `folder` (anything there is removed first), each argument
    list given to `uv pip install` in turn, then `uv pip check`. Returns its interpreter.
    Raises CalledProcessError naming the command that failed; uv's own output says why."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_binary()
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(folder)], check=True)
    env_python = folder / "bin" / "python"
    sources = pip_sources(python)
    for arguments in installs:
        # Each install compiles the modules it installs, as pip does (uv does not by default;
        # about 12 s for the full stack here). Otherwise the first worker of a new environment
        # compiles and writes what it imports, and keeps 20 MiB more resident than every later
        # one: an A/B run of a reused BASE and a new HEAD blamed HEAD's memory.
        subprocess.run([uv, "pip", "install", "--python", str(env_python), *sources, "--compile-bytecode", *arguments],
                       check=True)
    subprocess.run([uv, "pip", "check", "--python", str(env_python)], check=True)
    return env_python

"""Dedicated Python environments that a recipe's worker runs in (IPEX needs torch 2.8.*).

An environment is a virtual environment under sdperf's cache, created on request
by `sdperf env create NAME`: the lock (constraints.txt) minus the packages the
environment replaces, plus its own pins, plus this sdperf (editable, so its
worker is the code under test). A marker written last, holding the exact
install command, makes an environment usable: a half-built one is never used.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sdperf.models.store import cache_root

ROOT = Path(__file__).resolve().parents[1]
_MARKER = "sdperf-environment.json"


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    summary: str
    pins: tuple[str, ...]  # requirements added to the lock
    replaces: tuple[str, ...]  # lock entries dropped (their versions come from `pins`)
    download_note: str


ENVIRONMENTS = {
    "ipex": EnvironmentSpec(
        name="ipex",
        summary="Intel Extension for PyTorch 2.8 (its last release) with the torch minor version it needs",
        pins=("torch==2.8.0", "intel-extension-for-pytorch==2.8.0"),
        replaces=("torch",),
        download_note=(
            "torch 2.8.0 on PyPI is the CUDA build: pip downloads it with its nvidia CUDA 12.8 packages and "
            "triton (several GB, once; the environment is cached)"
        ),
    ),
}


def environment_folder(name: str) -> Path:
    return cache_root() / "envs" / name


def environment_python(name: str) -> Path | None:
    """The interpreter of a fully created environment, or None."""
    folder = environment_folder(name)
    python = folder / "bin" / "python"
    if not (folder / _MARKER).is_file() or not python.exists():
        return None
    return python


def lock_without(replaced: tuple[str, ...], lock: Path) -> str:
    """constraints.txt without the lines of the replaced distributions."""
    kept = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        name = requirement.split("==", 1)[0].strip().lower().replace("_", "-")
        if requirement and name in replaced:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def create(name: str, python: str = sys.executable, lock: Path = ROOT / "constraints.txt") -> Path:
    """Create (or finish creating) environment `name`; returns its interpreter."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"environment {name!r} is unknown; known: {', '.join(sorted(ENVIRONMENTS))}")
    spec = ENVIRONMENTS[name]
    folder = environment_folder(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    env_python = folder / "bin" / "python"
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt") as constraints:
        constraints.write(lock_without(spec.replaces, lock))
        constraints.flush()
        command = [
            str(env_python), "-m", "pip", "install", "--disable-pip-version-check",
            "-c", constraints.name, *spec.pins, "-e", str(ROOT),
        ]
        subprocess.run(command, check=True)
    subprocess.run([str(env_python), "-m", "pip", "check"], check=True)
    record = {"name": name, "pins": list(spec.pins), "lock": str(lock), "lock_without": list(spec.replaces)}
    (folder / _MARKER).write_text(json.dumps(record, indent=2))
    return env_python

"""Python environments that workers run in, other than the suite's own.

Two kinds, both virtual environments under sdperf's cache:
- named environments for recipes that need another stack (`sdperf env create ipex`:
  IPEX needs torch 2.8.*): the lock minus what they replace, plus their own pins;
- lock environments for A/B runs (`sdperf ab`): exactly the packages of a lock file,
  one environment per lock content, reused while the lock is unchanged.

Both get this sdperf (editable, so their worker is the code under test). A marker
written last makes an environment usable: a half-built one is never used, and is
rebuilt from scratch on the next request.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from sdperf.execution.installer import build_environment
from sdperf.models.store import cache_root

ROOT = Path(__file__).resolve().parents[2]  # the checkout (sdperf/execution/ -> .)
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
            "torch 2.8.0 on PyPI is the CUDA build: it comes with its nvidia CUDA 12.8 packages and "
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
        if requirement and canonicalize_name(requirement.split("==", 1)[0].strip()) in replaced:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def _build(folder: Path, installs: list[list[str]], record: dict, python: str) -> Path:
    """A fresh environment in `folder` (sdperf.execution.installer), then marked usable.
    Raises CalledProcessError on failure."""
    (folder / _MARKER).unlink(missing_ok=True)
    env_python = build_environment(folder, installs, python)
    (folder / _MARKER).write_text(json.dumps(record, indent=2))
    return env_python


def create(name: str, python: str = sys.executable, lock: Path = ROOT / "constraints.txt") -> Path:
    """Create (or finish creating) environment `name`; returns its interpreter."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"environment {name!r} is unknown; known: {', '.join(sorted(ENVIRONMENTS))}")
    spec = ENVIRONMENTS[name]
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt") as constraints:
        constraints.write(lock_without(spec.replaces, lock))
        constraints.flush()
        record = {"name": name, "pins": list(spec.pins), "lock": str(lock), "lock_without": list(spec.replaces)}
        return _build(
            environment_folder(name), [["-c", constraints.name, *spec.pins, "-e", str(ROOT)]], record, python
        )


class LockError(ValueError):
    """A lock file cannot give an environment; the message names the file and the fix."""


def lock_environment_name(lock: Path) -> str:
    """One environment per lock content, interpreter and checkout (its sdperf is this
    checkout's, editable): the same lock here reuses it."""
    digest = hashlib.sha256()
    digest.update(lock.read_bytes())
    digest.update(f"{platform.python_implementation()} {platform.python_version()} {platform.machine()}".encode())
    digest.update(str(ROOT).encode())
    return f"lock-{digest.hexdigest()[:16]}"


def ensure_lock_environment(lock: Path, python: str = sys.executable,
                            say: Callable[[str], None] = lambda line: None) -> str:
    """The environment holding exactly `lock`'s packages plus this sdperf: its name, created
    first when missing (a file lock keeps two runs from building it at once)."""
    from filelock import FileLock

    name = lock_environment_name(lock)
    folder = environment_folder(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if environment_python(name) is not None:
            (folder / _MARKER).touch()  # last use, for `sdperf env prune`
            return name
        say(f"sdperf: creating environment {folder} from {lock} (once per lock content; cached)")
        record = {"name": name, "lock": str(lock.resolve()), "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest()}
        try:
            # The lock's pins exactly, then this sdperf without letting uv add or change anything.
            _build(folder, [["-r", str(lock.resolve())], ["--no-deps", "-e", str(ROOT)]], record, python)
        except subprocess.CalledProcessError as error:
            raise LockError(
                f"creating the environment for lock {str(lock)!r} failed: {' '.join(map(str, error.cmd))} exited with "
                f"{error.returncode}; the lock must pin every package sdperf needs, resolvable here "
                "(see uv's output above)"
            ) from None
    return name


def prune_lock_environments(keep: int) -> list[Path]:
    """Remove all but the `keep` most recently used lock environments (each takes gigabytes;
    every new lock adds one). Named environments (ipex) stay. Returns what was removed."""
    from filelock import FileLock

    root = cache_root() / "envs"
    found = sorted(
        (folder for folder in root.glob("lock-*") if folder.is_dir()),
        key=lambda folder: (folder / _MARKER).stat().st_mtime if (folder / _MARKER).is_file() else 0.0,
        reverse=True,
    )
    removed = []
    for folder in found[keep:]:
        with FileLock(str(folder) + ".lock"):  # not while a run is creating it
            shutil.rmtree(folder)
        Path(str(folder) + ".lock").unlink(missing_ok=True)
        removed.append(folder)
    return removed


def remove_lock_environment(lock: Path) -> bool:
    """Remove the environment of `lock`'s content, if there is one (a culprit search's locks in
    between are used once). True when one was removed."""
    from filelock import FileLock

    folder = environment_folder(lock_environment_name(lock))
    if not folder.is_dir():
        return False
    with FileLock(str(folder) + ".lock"):
        shutil.rmtree(folder)
    Path(str(folder) + ".lock").unlink(missing_ok=True)
    return True


def environment_packages(name: str) -> dict[str, str]:
    """Distribution name (canonical, PEP 503) -> version, as installed in environment `name`."""
    python = environment_python(name)
    if python is None:
        raise LockError(f"environment {name!r} does not exist")
    script = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    done = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    return {canonicalize_name(key): value for key, value in json.loads(done.stdout).items()}


def package_changes(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """What B installs differently from A, one entry per distribution: "x 1.0 -> 1.1", "+y 2.0", "-z 3.0"."""
    changes = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            changes.append(f"-{name} {a[name]}")
        elif name not in a:
            changes.append(f"+{name} {b[name]}")
        elif a[name] != b[name]:
            changes.append(f"{name} {a[name]} -> {b[name]}")
    return changes

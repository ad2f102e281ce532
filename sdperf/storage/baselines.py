"""Saved runs and baselines: pytest-benchmark JSON files, validated on load, promoted on purpose.

Layout: `baselines/<storage key>/<pytest-benchmark machine id>/NNNN_baseline.json`,
the storage key being the host's profile or `emulated-<profile>`. That is a
pytest-benchmark storage folder, so `pytest-benchmark --storage baselines/pi5
compare` reads it as it reads `.benchmarks/`. The newest number is the baseline;
promotion adds a file and never replaces one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sdperf.storage.results import READABLE_SCHEMAS, RESULT_SCHEMA_VERSION
from sdperf.storage.run_schema import run_problems

_NUMBERED = re.compile(r"^(\d{4})_.*\.json$")


# How to get a usable file, said after every schema problem (promote and compare alike).
_SCHEMA_FIX = "re-run the suite and promote a fresh run (sdperf promote RUN.json), or correct the file"
# A file with many problems lists the first few: enough to see what went wrong, short enough to read.
_PROBLEMS_LISTED = 8


class BaselineError(ValueError):
    """A run or baseline file is unusable, or a promotion is refused; the message names the file."""


class InvalidRunError(BaselineError):
    """The file itself is unusable: unreadable, not a saved run, or breaking the schema
    (a wrong type, an impossible value). Bad input, where BaselineError alone is a refusal."""


def baseline_folder(root: Path, key: str) -> Path:
    return root / "baselines" / key


def numbered_runs(folder: Path) -> list[Path]:
    """Every `NNNN_*.json` under `folder` (any machine id), oldest first."""
    if not folder.is_dir():
        return []
    found = [path for path in folder.glob("*/*.json") if _NUMBERED.match(path.name)]
    return sorted(found, key=lambda path: (path.name, str(path.parent)))


def latest_baseline(root: Path, key: str) -> Path | None:
    runs = numbered_runs(baseline_folder(root, key))
    return runs[-1] if runs else None


def load_run(path: Path) -> dict[str, Any]:
    """Read a saved run (pytest-benchmark JSON with our `sdperf` part) and check it against the schema:
    what is promoted and what is compared against pass through here."""
    document = _read_json(path)
    _check_is_an_sdperf_run(document, path)
    problems = run_problems(document)
    if problems:
        raise InvalidRunError(_schema_message(path, problems))
    return document


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidRunError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRunError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}); the file is truncated or was "
            "not written by pytest-benchmark; restore it from version control or delete it"
        ) from None


def _check_is_an_sdperf_run(document: Any, path: Path) -> None:
    """A foreign or too new file is told apart first: its fix is not to correct a field."""
    if not isinstance(document, dict):
        raise InvalidRunError(f"{path}: expected a JSON object, found {type(document).__name__}")
    missing = [key for key in ("machine_info", "benchmarks", "datetime") if key not in document]
    if missing:
        raise InvalidRunError(f"{path}: not a pytest-benchmark result: missing {', '.join(missing)}")
    ours = document.get("sdperf")
    if not isinstance(ours, dict):
        raise InvalidRunError(f"{path}: no 'sdperf' section: saved by pytest-benchmark without the sdperf plugin")
    schema = ours.get("schema")
    # `true` would pass for schema 1 (bool is an int in Python).
    if isinstance(schema, bool) or schema not in READABLE_SCHEMAS:
        raise InvalidRunError(
            f"{path}: sdperf schema {schema!r}; this sdperf reads schemas "
            f"{', '.join(map(str, READABLE_SCHEMAS))}: rerun and save it with this version"
        )


def _schema_message(path: Path, problems: list[str]) -> str:
    """One line for one problem, else a short list: never a traceback."""
    if len(problems) == 1:
        return f"{path}: {problems[0]}; {_SCHEMA_FIX}"
    listed = [f"  {problem}" for problem in problems[:_PROBLEMS_LISTED]]
    if len(problems) > _PROBLEMS_LISTED:
        listed.append(f"  ... and {len(problems) - _PROBLEMS_LISTED} more")
    return "\n".join([f"{path}: {len(problems)} problems; {_SCHEMA_FIX}:", *listed])


def machine_id(document: dict[str, Any], source: Path) -> str:
    """pytest-benchmark's folder name for the machine that saved the run (recorded at save time)."""
    found = document["machine_info"].get("sdperf", {}).get("machine_id")
    if not found or "/" in found or found.startswith("."):
        raise InvalidRunError(f"{source}: machine_info.sdperf.machine_id is missing or unusable ({found!r})")
    return found


def promotion_refusals(document: dict[str, Any]) -> list[str]:
    """Why a run cannot become a baseline (empty when it can)."""
    reasons = []
    if document["sdperf"].get("ab"):
        # Its timings are B's, measured beside A's: a comparison, not a profile's baseline.
        reasons.append("it is an A/B run of two locks (sdperf ab); promote a run of the suite itself")
    cases = document["sdperf"]["cases"]
    run = document["sdperf"].get("run")
    if not isinstance(run, dict):
        reasons.append("it records no run completeness (saved before schema 4): rerun and promote that run")
    else:
        if run.get("interrupted"):
            reasons.append(f"the run was interrupted (exit status {run.get('exitstatus')}): its cases are not all measured")
        if run.get("collection_errors"):
            reasons.append(f"{run['collection_errors']} collection error(s): some cases were never collected")
        for node, error in (run.get("errors") or {}).items():
            reasons.append(f"{node}: {error}")
        unfinished = [node for node in run.get("unfinished") or () if node not in (run.get("errors") or {})]
        if unfinished:
            reasons.append("cases selected but not finished: " + ", ".join(unfinished))
    for case in cases:
        if case.get("status") in ("failed", "invalid", "running"):
            reasons.append(f"{case['case_id']} {case['status']}: {case.get('reason') or 'no reason recorded'}")
    if not any(case.get("kind") == "latency" and case.get("status") in ("passed", "regressed") for case in cases):
        reasons.append("no latency case passed in this run")
    if not document["benchmarks"]:
        reasons.append("the run saved no benchmark timings")
    return reasons


def _write_new(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, refusing to replace a file that exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".promote-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(temporary, path)  # fails if `path` exists: nothing is overwritten
    except FileExistsError:
        raise BaselineError(f"{path} exists already; promotion never replaces a baseline") from None
    finally:
        os.unlink(temporary)


def promote(run: Path, root: Path, label: str = "baseline") -> Path:
    """Make a saved, valid run the newest baseline of its storage key; returns the new file."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
        raise BaselineError(f"label {label!r}: use letters, digits, '.', '_' or '-' (it becomes part of a file name)")
    document = load_run(run)
    refusals = promotion_refusals(document)
    if refusals:
        raise BaselineError(f"{run} cannot be promoted:\n  " + "\n  ".join(refusals))
    if document["sdperf"].get("schema") != RESULT_SCHEMA_VERSION:
        raise BaselineError(f"{run}: schema {document['sdperf'].get('schema')} is old; promote a run of this version")
    key = document["machine_info"].get("sdperf", {}).get("storage_key")
    if not key:
        raise InvalidRunError(f"{run}: machine_info.sdperf.storage_key is missing; cannot tell which profile it is for")
    folder = baseline_folder(root, key)
    existing = numbered_runs(folder)
    number = int(existing[-1].name[:4]) + 1 if existing else 1
    target = folder / machine_id(document, run) / f"{number:04d}_{label}.json"
    _write_new(target, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return target


def machine_differences(current: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """What differs between this run's machine_info and a baseline's, in the terms that
    matter for a comparison (pytest-benchmark's own check prints both dicts whole)."""
    differences = []
    for label, path in (("python", ("python_version",)), ("kernel", ("release",)), ("node", ("node",)),
                        ("CPU", ("cpu", "brand_raw")), ("profile key", ("sdperf", "storage_key")),
                        ("lock", ("sdperf", "lock_sha256"))):
        now, then = current, saved
        for key in path:
            now = now.get(key) if isinstance(now, dict) else None
            then = then.get(key) if isinstance(then, dict) else None
        if now != then:
            differences.append(f"{label} {then} -> {now}")
    packages_now = current.get("sdperf", {}).get("packages", {}) or {}
    packages_then = saved.get("sdperf", {}).get("packages", {}) or {}
    for name in sorted(set(packages_now) | set(packages_then)):
        if packages_now.get(name) != packages_then.get(name):
            differences.append(f"{name} {packages_then.get(name)} -> {packages_now.get(name)}")
    return differences

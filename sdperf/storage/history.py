"""The nightly history: every finished, valid case of every run, kept outside the checkout.

Layout, one folder per storage key (profile, `emulated-<profile>` or `ab-<profile>`) and machine:

    <history>/<storage key>/<machine>/entries/<run id>--<case id>.json   one finished case
    <history>/<storage key>/<machine>/runs/<run id>.json                 the run: selected, finished, unfinished

An entry is written once, atomically (a temporary file linked into place), and never
replaced: a crash, a kill or two runs at once can leave a stray temporary file, never a
half-written or overwritten entry. A run file is replaced atomically after each case, so a
killed run keeps every case it finished and says which it did not. A file that cannot be
read is named and skipped by every reader (`Damaged`), never silently dropped.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HISTORY_SCHEMA = 1
HISTORY_VARIABLE = "SDPERF_HISTORY"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class HistoryError(ValueError):
    """A history folder or entry that cannot be used; the message names it."""


def default_history_dir() -> Path:
    """The user's data folder (~/.local/share/sdperf/history on Linux): outside any checkout,
    so `actions/checkout` (git clean -ffdx) never takes it."""
    from platformdirs import user_data_path

    return user_data_path("sdperf") / "history"


def history_dir(option: str | None) -> tuple[Path, str]:
    """The history folder and where that choice came from: the option, SDPERF_HISTORY, or the default."""
    if option:
        return Path(option).expanduser().resolve(), "--sdperf-history"
    if os.environ.get(HISTORY_VARIABLE):
        return Path(os.environ[HISTORY_VARIABLE]).expanduser().resolve(), HISTORY_VARIABLE
    return default_history_dir(), "the default (the user's data folder)"


def unwritable_reason(root: Path) -> str | None:
    """Why the history cannot be written in `root` (None when it can), checked without creating
    anything: the folder, or the nearest folder above it that exists, must be writable."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None


def safe_name(text: str) -> str:
    """A name usable as one path part: anything but letters, digits, '_', '.', '-' becomes '_'."""
    cleaned = _SAFE.sub("_", text).strip("._") or "unnamed"
    return cleaned[:120]


def machine_name() -> str:
    """This machine in the history: its host name (a runner's name is stable night to night)."""
    return safe_name(socket.gethostname())


def new_run_id(now: datetime.datetime | None = None) -> str:
    """Sortable by start time, unique across runs started the same second on one machine."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}-{secrets.token_hex(3)}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_atomically(path: Path, document: dict[str, Any], replace: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        if replace:
            os.replace(temporary, path)
            temporary = None
        else:
            os.link(temporary, path)  # fails when `path` exists: an entry is never overwritten
    except FileExistsError:
        raise HistoryError(f"{path} exists already; history entries are never replaced") from None
    finally:
        if temporary is not None:
            os.unlink(temporary)


@dataclass(frozen=True)
class Place:
    """One storage key on one machine inside a history folder."""

    root: Path
    storage_key: str
    machine: str

    @property
    def folder(self) -> Path:
        return self.root / safe_name(self.storage_key) / safe_name(self.machine)

    def entry_path(self, run: str, case: str) -> Path:
        return self.folder / "entries" / f"{safe_name(run)}--{safe_name(case)}.json"

    def run_path(self, run: str) -> Path:
        return self.folder / "runs" / f"{safe_name(run)}.json"

    def append(self, entry: dict[str, Any]) -> Path:
        """Add one finished case; refuses to replace an entry."""
        path = self.entry_path(entry["run"], entry["case"])
        _write_atomically(path, {"history_schema": HISTORY_SCHEMA, **entry}, replace=False)
        return path

    def write_run(self, run: dict[str, Any]) -> Path:
        """Write (or rewrite) the run's own file: one writer per run, so replacing is safe."""
        path = self.run_path(run["run"])
        _write_atomically(path, {"history_schema": HISTORY_SCHEMA, **run}, replace=True)
        return path


@dataclass(frozen=True)
class Damaged:
    path: Path
    reason: str

    def describe(self) -> str:
        return f"skipped damaged history file {self.path}: {self.reason}"


@dataclass
class Loaded:
    """What a history folder holds (or the part asked for), with every file that could not be read."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)


_ENTRY_FIELDS = {"run": str, "case": str, "storage_key": str, "machine": str, "median_s": (int, float),
                 "latencies_s": list, "finished": str}


def _read(path: Path, required: dict[str, Any]) -> dict[str, Any] | Damaged:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return Damaged(path, f"cannot be read: {error.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return Damaged(path, f"not valid JSON ({error}); delete it or restore it from a backup")
    if not isinstance(document, dict):
        return Damaged(path, f"expected a JSON object, found {type(document).__name__}")
    if document.get("history_schema") != HISTORY_SCHEMA:
        return Damaged(path, f"history schema {document.get('history_schema')!r}; this sdperf reads {HISTORY_SCHEMA}")
    for key, kind in required.items():
        if not isinstance(document.get(key), kind):
            return Damaged(path, f"field {key!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    if "median_s" in required and not document["median_s"] > 0:
        return Damaged(path, f"median_s {document['median_s']!r} is not a positive time")
    return document


def load(root: Path, storage_key: str | None = None, machine: str | None = None) -> Loaded:
    """Every entry and run file under `root`, optionally of one storage key and/or machine,
    oldest run first. Temporary files of interrupted writes are not entries and are ignored."""
    loaded = Loaded()
    if not root.is_dir():
        return loaded
    keys = [root / safe_name(storage_key)] if storage_key else sorted(p for p in root.iterdir() if p.is_dir())
    for key_folder in keys:
        machines = [key_folder / safe_name(machine)] if machine else sorted(
            p for p in key_folder.iterdir() if p.is_dir()) if key_folder.is_dir() else []
        for folder in machines:
            for path in sorted((folder / "entries").glob("[!.]*.json")):
                found = _read(path, _ENTRY_FIELDS)
                (loaded.damaged if isinstance(found, Damaged) else loaded.entries).append(found)
            for path in sorted((folder / "runs").glob("[!.]*.json")):
                found = _read(path, {"run": str, "state": str})
                (loaded.damaged if isinstance(found, Damaged) else loaded.runs).append(found)
    loaded.entries.sort(key=lambda entry: (entry["run"], entry["case"]))
    loaded.runs.sort(key=lambda run: run["run"])
    return loaded


def series(entries: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    """One case's entries (by case id, e.g. cpu-fp32, or its full test id), oldest run first."""
    return [entry for entry in entries if case in (entry["case"], entry.get("test"))]


def series_keys(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Every (storage key, machine, case) that has entries: each is one series."""
    return sorted({(entry["storage_key"], entry["machine"], entry["case"]) for entry in entries})

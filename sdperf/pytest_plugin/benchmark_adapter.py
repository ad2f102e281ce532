"""Every use of pytest-benchmark beyond its documented hooks, in one place.

pytest-benchmark offers no public way to choose its storage per hardware profile,
to find the entry a test was compared with, or to read its machine id, so this
module reaches into it. Its next release can break this file and no other.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DEFAULT_STORAGE = "file://./.benchmarks"

# Finds the stored baseline's entry for a test (pytest-benchmark's fullname): (entry, file) or None.
BaselineLookup = Callable[[str], "tuple[dict, str] | None"]


def refuse_unmeasurable_modes(config: pytest.Config) -> None:
    """Modes in which pytest-benchmark quietly runs each case once and saves nothing:
    refused with the reason, never half-honoured."""
    if getattr(config.option, "benchmark_disable", False):
        raise pytest.UsageError(
            "--benchmark-disable: sdperf cases are benchmarks; with it pytest-benchmark runs one round and records "
            "nothing. Deselect them instead (-m 'not cpu', -k ...) or run the suite's own tests (pytest tests)"
        )
    if getattr(config.option, "benchmark_histogram", None):
        missing = [name for name in ("pygal", "pygaljs") if importlib.util.find_spec(name) is None]
        if missing:
            raise pytest.UsageError(
                f"--benchmark-histogram: pytest-benchmark draws it with {' and '.join(missing)}, not installed here; "
                "install sdperf's plot extra (pip install -e '.[plot]') or leave the option out"
            )
    workers = getattr(config.option, "numprocesses", None)
    if workers not in (None, 0, "0"):
        raise pytest.UsageError(
            f"-n {workers} (pytest-xdist): pytest-benchmark disables itself under xdist, and cases timed side by "
            "side would slow each other down; run without -n"
        )


@contextlib.contextmanager
def seen_as_benchmarks(items: list[pytest.Item], fixtures: tuple[str, ...]):
    """pytest-benchmark tells benchmarks by the `benchmark` fixture in a test's fixture names, to
    apply --benchmark-only and --benchmark-skip; sdperf's cases request it only when timing starts.
    While its collection hook runs, cases using `fixtures` carry the name, then no longer."""
    marked = [item for item in items
              if set(fixtures) & set(getattr(item, "fixturenames", ())) and "benchmark" not in item.fixturenames]
    for item in marked:
        item.fixturenames.append("benchmark")
    try:
        yield
    finally:
        for item in marked:
            item.fixturenames.remove("benchmark")


# Options a user gives to see pytest-benchmark's own table (or the histogram drawn with it).
TABLE_OPTIONS = (
    "--benchmark-histogram", "--benchmark-columns", "--benchmark-sort", "--benchmark-group-by", "--benchmark-name",
    "--benchmark-verbose", "--benchmark-cprofile",
)


def show_one_table(config: pytest.Config) -> None:
    """sdperf's results table says what pytest-benchmark's would, per case and with verdicts: its
    table is left out unless an option of it was given. Its regression check still runs."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split(), *config.getini("addopts")]
    if not any(str(arg).startswith(TABLE_OPTIONS) for arg in given):
        session.quiet = True


def wants_storage(config: pytest.Config) -> bool:
    """True when the run saves to or compares with pytest-benchmark's storage."""
    option = config.option
    return bool(
        getattr(option, "benchmark_save", None) or getattr(option, "benchmark_autosave", False)
        or getattr(option, "benchmark_compare", None)
    )


def storage_is_default(config: pytest.Config) -> bool:
    return getattr(config.option, "benchmark_storage", None) == DEFAULT_STORAGE


def set_storage(config: pytest.Config, folder: Path) -> None:
    """Save and compare in `folder` (before pytest-benchmark reads the option)."""
    config.option.benchmark_storage = f"file://{folder}"


def storage_text(config: pytest.Config) -> str:
    return str(getattr(config.option, "benchmark_storage", ""))


def compare_option(config: pytest.Config):
    """--benchmark-compare: None/False (not given), True (bare), or the value given."""
    return getattr(config.option, "benchmark_compare", None)


def compare_fail_given(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "benchmark_compare_fail", None))


def compare_with(config: pytest.Config, target: str | bool) -> None:
    """Point --benchmark-compare at a file (str), or turn it off (False)."""
    config.option.benchmark_compare = target


def runs_in_storage(config: pytest.Config, compare) -> list[str]:
    """The saved runs --benchmark-compare means in pytest-benchmark's own terms: the newest
    run in the storage (bare), or those a value names."""
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import get_machine_id

    storage = storage_text(config).removeprefix("file://")
    runs = FileStorage(storage, logger=None, default_machine_id=get_machine_id())
    return [str(path) for path in (runs.query("[0-9][0-9][0-9][0-9]_")[-1:] if compare is True else runs.query(str(compare)))]


def saved_runs(config: pytest.Config) -> list[Path]:
    """The files pytest-benchmark wrote this run (--benchmark-json, and the numbered run of
    --benchmark-save/--benchmark-autosave in the storage); after it saved, so from the summary on."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return []
    found = []
    if session.json and Path(session.json).is_file():
        found.append(Path(session.json).resolve())
    tag = session.save or session.autosave
    folder = getattr(session.storage, "path", None)
    if tag and folder is not None:
        machine = getattr(session.storage, "default_machine_id", None) or ""
        found.extend(sorted((Path(folder) / machine).glob(f"[0-9][0-9][0-9][0-9]_{tag}.json"))[-1:])
    return found


def keep_only_finished(config: pytest.Config, finished: set[str]) -> None:
    """After Ctrl-C: drop the benchmarks of cases that did not finish, and name the run saved
    to the storage (if any case finished) `..._interrupted`, so `pytest-benchmark list` and
    `compare` tell it from complete runs."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return
    session.benchmarks[:] = [bench for bench in session.benchmarks if bench.fullname in finished]
    if session.autosave:
        session.autosave = f"{session.autosave}_interrupted"
    if session.save:
        session.save = f"{session.save}_interrupted"


_WRITTEN_KEY = pytest.StashKey[dict]()


def write_json_now(config: pytest.Config, only_if_nothing_timed: bool = False) -> Path | None:
    """Write --benchmark-json from what has finished so far, atomically, through pytest-benchmark's
    own hooks (as its session end does): a run killed halfway keeps its finished cases in it,
    and a run in which no case reached its timed rounds still leaves its cases' reasons (where
    pytest-benchmark saves nothing). Machine and commit info are gathered once per run."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "json", None):
        return None
    if only_if_nothing_timed and session.benchmarks:
        return None  # pytest-benchmark writes the file itself at session end
    cache = config.stash.setdefault(_WRITTEN_KEY, {})
    if "machine" not in cache:
        cache["machine"] = config.hook.pytest_benchmark_generate_machine_info(config=config)
        commit = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit)
        cache["commit"] = commit
    machine_info = copy.deepcopy(cache["machine"])
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    benchmarks = list(session.benchmarks)
    output = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=benchmarks, include_data=True, machine_info=machine_info, commit_info=cache["commit"],
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks, output_json=output)
    from pytest_benchmark.utils import safe_dumps

    target = Path(session.json)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(safe_dumps(output, ensure_ascii=True, indent=4))
    os.replace(temporary, target)
    return target


def machine_id() -> str:
    """pytest-benchmark's folder name for this machine (OS, Python implementation and version)."""
    from pytest_benchmark.utils import get_machine_id

    return get_machine_id()


def baseline_lookup(config: pytest.Config) -> BaselineLookup | None:
    """Lookup of a test's entry in the run compared against, as pytest-benchmark loaded it."""
    session = getattr(config, "_benchmarksession", None)
    mapping = getattr(session, "compared_mapping", None) or {}
    if not mapping:
        return None

    def find(fullname: str):
        found = None
        for path, benches in mapping.items():
            if fullname in benches:
                found = (benches[fullname], str(path))
        return found

    return find


class Timer:
    """The `benchmark` fixture of one test, requested only when timing starts, so a case
    that fails before timing leaves no empty benchmark behind."""

    def __init__(self, request: pytest.FixtureRequest, group: str) -> None:
        self._request = request
        self._group = group
        self._fixture: Any = None

    @property
    def fixture(self) -> Any:
        if self._fixture is None:
            self._fixture = self._request.getfixturevalue("benchmark")
            self._fixture.group = self._group
        return self._fixture

    @property
    def fullname(self) -> str:
        return self.fixture.fullname

    def rounds(self, one_round: Callable[[], None], setup: Callable[[], None] | None,
               teardown: Callable[[], None] | None, rounds: int) -> None:
        """Time `one_round` `rounds` times in pedantic mode: no calibration loops (a round of real
        weights can take half an hour), `setup` and `teardown` untimed around each."""
        self.fixture.pedantic(one_round, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=0, iterations=1)

    def record(self, **extra: Any) -> None:
        """Add to the benchmark's `extra_info` (saved with it)."""
        self.fixture.extra_info.update(extra)

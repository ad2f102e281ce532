"""One object holds a pytest run's sdperf state: settings, results, the host, the run's
image folder, the A/B sides, and what became of every selected case."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sdperf.execution.environments import LockError
from sdperf.pytest_plugin import benchmark_adapter as adapter
from sdperf.pytest_plugin.options import Settings
from sdperf.storage.results import CaseResult, Status


@dataclass
class RunRecord:
    """What happened to the run as a whole: promotion needs a complete one."""

    selected: list[str] = field(default_factory=list)  # node ids after -m/-k selection
    errors: dict[str, str] = field(default_factory=dict)  # node id -> error outside the test's call
    collection_errors: int = 0
    interrupted: bool = False
    exitstatus: int | None = None

    def to_json(self, results: list[CaseResult]) -> dict[str, Any]:
        finished = {result.test for result in results if result.status is not Status.RUNNING}
        return {
            "selected": list(self.selected),
            "unfinished": [node for node in self.selected if node not in finished],
            "errors": dict(self.errors),
            "collection_errors": self.collection_errors,
            "interrupted": self.interrupted,
            "exitstatus": self.exitstatus,
        }


@dataclass(eq=False)
class SdperfSession:
    """Registered as a plugin (as pytest-benchmark registers its own session): its hook
    methods below keep the run record as pytest reports what happens."""

    config: pytest.Config
    settings: Settings
    results: list[CaseResult] = field(default_factory=list)
    compare_note: str | None = None
    own_storage: bool = False  # True when sdperf chose the run storage
    run: RunRecord = field(default_factory=RunRecord)
    _host: Any = None
    _facts: Any = None
    _images: Path | None = None
    _images_base_made: bool = False
    _ab: Any = None  # sdperf.execution.ab_sides.Sides, or the LockError that stopped them
    _run_images: Any = None
    history: Any = None  # sdperf.pytest_plugin.history_recorder.HistoryRecorder, unless --sdperf-history=off
    checks_selected: bool = False  # a correctness check runs: benchmarks keep their last image for it

    # ---------------------------------------------------------------- run record

    @pytest.hookimpl(trylast=True)  # after -m and -k have deselected
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Checks judge the images the benchmarks draw: benchmarks first, so a check of a
        # case whose benchmark also runs draws nothing of its own.
        checks = [item for item in items if "sdperf_check" in getattr(item, "fixturenames", ())]
        if checks:
            others = [item for item in items if "sdperf_check" not in getattr(item, "fixturenames", ())]
            items[:] = others + checks
        self.checks_selected = bool(checks)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.run.selected = [
            item.nodeid for item in session.items
            if {"sdperf_case", "sdperf_harness"} & set(getattr(item, "fixturenames", ()))
        ]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.run.collection_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # An error outside the test body (a fixture's set-up or teardown): the case never ran,
        # or ran and then broke; either way the run is not complete.
        if report.failed and report.when in ("setup", "teardown"):
            self.run.errors[report.nodeid] = f"error in {report.when}: {failure_line(report)}"

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.run.interrupted = True
        # The case Ctrl-C stopped has fewer rounds than asked (maybe none): pytest-benchmark
        # would save it beside complete ones, or die on its empty samples. Only finished cases stay.
        finished = {result.test for result in self.results if result.status != Status.RUNNING}
        adapter.keep_only_finished(self.config, finished)

    # Before pytest-benchmark's own wrapper saves the run: the record must be complete by then.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int):
        self.run.exitstatus = int(exitstatus)
        self.run.interrupted = self.run.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED
        return (yield)

    # ---------------------------------------------------------------- host and run

    def host(self):
        """The host as detected under --sdperf-host-root, once per run and only when asked
        (detection runs nvidia-smi: never for --help or an emulated profile's storage)."""
        if self._host is None:
            from sdperf.host.detection import detect_host

            self._host = detect_host(self.settings.host_root)
        return self._host

    def storage_key(self) -> str:
        """Folder name that keeps runs of different hardware, and emulated runs, apart."""
        emulate, primary = self.settings.emulate, self.host().primary
        # Running the host's own profile by option is not emulation: its runs meet `make bench`'s.
        key = f"emulated-{emulate}" if emulate and emulate != primary else primary
        # An A/B run's timings are B's beside A's: kept apart from the suite's own runs.
        return f"ab-{key}" if self.settings.ab else key

    def host_profiles(self) -> tuple[tuple[str, ...], str]:
        """Profiles this host runs, and a one-line description of the host."""
        if self.settings.emulate:
            return (self.settings.emulate,), f"emulating {self.settings.emulate} (--sdperf-profile)"
        host = self.host()
        return tuple(host.matches), f"host detected as {host.primary}: {host.reasons[host.primary]}"

    def host_facts(self):
        if self._facts is None:
            from sdperf.execution.environments import environment_python
            from sdperf.host.capabilities import host_facts

            self._facts = host_facts(self.host(), environment_python)
        return self._facts

    def ab_sides(self, say: Callable[[str], None]):
        """The two environments of --sdperf-ab, created on first use (`sdperf ab` creates them
        before pytest starts). A lock that cannot give an environment fails every A/B case."""
        from sdperf.execution.ab_sides import prepare

        if self._ab is None:
            base, head = self.settings.ab
            try:
                self._ab = prepare(base, head, say=say)
            except LockError as error:
                self._ab = error
        if isinstance(self._ab, Exception):
            raise self._ab
        return self._ab

    def images_dir(self) -> Path:
        """This run's image folder: named by time and profile, and written into the saved JSON."""
        if self._images is None:
            base = self.settings.save_images or self.config.rootpath / ".benchmarks" / self.storage_key() / "images"
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self._images = base / f"{stamp}-{self.storage_key()}"
            self._images_base_made = not base.exists()
            self._images.mkdir(parents=True, exist_ok=True)
        return self._images

    def run_images(self):
        """The run's ledger of drawn images (`sdperf.pytest_plugin.run_images.RunImages`)."""
        if self._run_images is None:
            from sdperf.pytest_plugin.run_images import RunImages

            self._run_images = RunImages(self.images_dir, keep=self.settings.save_images is not None)
        return self._run_images

    def drop_empty_images_dir(self) -> None:
        # Checks work in the run's image folder; without --sdperf-save-images it ends up empty.
        if self._run_images is not None:
            self._run_images.discard()
        if self._images is not None and self._images.is_dir() and not any(self._images.iterdir()):
            self._images.rmdir()
            # The folder above it too, when this run made it and nothing else is in it.
            base = self._images.parent
            if self._images_base_made and not any(base.iterdir()):
                base.rmdir()

    def controls(self) -> dict[str, str]:
        """Profile -> its control recipe (what "vs control" means in the table)."""
        return {name: profile.control for name, profile in self.settings.profiles.items()}

    def run_note(self) -> str | None:
        """What the run was compared with: the baseline note, and an A/B run's two sides."""
        # With nothing run (say `-m pi5` on another host), the host's own baseline is beside the point.
        ran = any(result.status != Status.SKIPPED for result in self.results)
        notes = [self.compare_note if ran else None]
        sides = self._ab
        if sides is not None and not isinstance(sides, Exception):
            changes = ", ".join(sides.changes) or "nothing (identical package sets)"
            notes.append(
                f"A/B: A = {sides.a.lock} ({sides.a.env}), B = {sides.b.lock} ({sides.b.env}); "
                f"B installs differently: {changes}"
            )
        return "\n".join(note for note in notes if note) or None

    def ab_json(self):
        if not self.settings.ab:
            return None
        if self._ab is None or isinstance(self._ab, Exception):
            return {"error": str(self._ab) if self._ab else "no A/B case ran"}
        return self._ab.to_json()


def failure_line(report: pytest.TestReport) -> str:
    """The one line that says what failed: the exception and its message."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message.splitlines()[0]
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"


SESSION_KEY = pytest.StashKey[SdperfSession]()
# Each test item's case result, for the report hooks.
CASE_RESULT_KEY = pytest.StashKey[CaseResult]()


def session_of(config: pytest.Config) -> SdperfSession:
    return config.stash[SESSION_KEY]

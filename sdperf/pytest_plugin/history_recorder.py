"""Writes a run into the nightly history as it goes: each finished, valid case the moment its
test ends, and the run's own file (selected, finished, unfinished) after every case, so a run
killed halfway keeps what it finished. See `sdperf.storage.history` for the layout."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sdperf.config.profiles import VerdictPolicy
from sdperf.judging.noise import LearnedNoise, learn_noise
from sdperf.pytest_plugin.session import CASE_RESULT_KEY, SdperfSession
from sdperf.storage.history import HistoryError, Loaded, Place, load, machine_name, new_run_id, series, utc_now
from sdperf.storage.results import CaseResult, Status

# Cases whose timings are a measurement of the case: failed and invalid ones measured nothing usable.
KEPT = (Status.PASSED, Status.REGRESSED)


def lock_pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a pip lock (comments and options skipped)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.split(";")[0].strip()
    return pins


def sdperf_commit(root: Path) -> str | None:
    """The checkout's commit (with "-dirty" when tracked files changed), or None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class HistoryRecorder:
    """Registered as a plugin when the run keeps a history (not with --sdperf-history=off)."""

    def __init__(self, session: SdperfSession, root: Path, source: str) -> None:
        self.session = session
        self.root = root
        self.source = source
        self.run_id = new_run_id()
        self.started = utc_now()
        self.finished: dict[str, dict[str, Any]] = {}
        self.written: list[Path] = []
        self._place: Place | None = None
        self._environment: dict[str, Any] | None = None
        self._past: Loaded | None = None
        self.problem: str | None = None
        self.started_run = False

    # ------------------------------------------------------------------ context

    def place(self) -> Place:
        if self._place is None:
            self._place = Place(self.root, self.session.storage_key(), machine_name())
        return self._place

    def environment(self) -> dict[str, Any]:
        """What a change can be blamed on, the same for every case of the run."""
        if self._environment is None:
            from sdperf.common.packages import package_versions

            config = self.session.config
            lock = self.session.settings.ab[1] if self.session.settings.ab else config.rootpath / "constraints.txt"
            self._environment = {
                "lock": str(lock),
                "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
                "lock_packages": lock_pins(lock) if lock.is_file() else {},
                "packages": package_versions(),
                "sdperf_commit": sdperf_commit(config.rootpath),
                "python": platform.python_version(),
                "kernel": platform.release(),
            }
        return self._environment

    def past(self) -> Loaded:
        """This machine's history of this storage key before the run (read once)."""
        if self._past is None:
            place = self.place()
            self._past = load(self.root, place.storage_key, place.machine)
        return self._past

    def learned_noise(self, case_id: str, policy: VerdictPolicy) -> LearnedNoise:
        """The case's run-to-run noise on this machine, from its past nights (the profile's
        prior until enough nights with nothing changed exist)."""
        return learn_noise(series(self.past().entries, case_id), policy.session_noise, policy.calibration_nights)

    def entry(self, result: CaseResult) -> dict[str, Any]:
        environment = dict(self.environment())
        audit = result.load.get("audit") or {}
        if audit.get("packages"):
            # What the worker imported (an A/B side's or a dedicated environment's), over the parent's.
            environment["packages"] = audit["packages"]
        place = self.place()
        return {
            "run": self.run_id,
            "run_started": self.started,
            "finished": utc_now(),
            "storage_key": place.storage_key,
            "machine": place.machine,
            "case": result.case_id,
            "test": result.test,
            "profile": result.profile,
            "recipe": result.recipe,
            "model": result.model,
            "model_sha256": result.load.get("weights_sha256"),
            "workload": result.workload,
            "status": result.status.value,
            "median_s": result.median_s,
            "latencies_s": list(result.parent_latencies_s),
            "round_workers": [r.get("worker") for r in result.rounds],
            "seconds_per_step": result.seconds_per_step(),
            "peak_rss_bytes": result.peak_rss_bytes(),
            "image_sha256": result.image_hashes(),
            "image_path": result.image_path,
            "verdicts": result.verdicts,
            "baseline_source": result.baseline_source,
            "environment": environment,
            "host_state": result.host_state,
            "notes": list(result.notes),
        }

    # ------------------------------------------------------------------ hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        # The run file appears when its first case starts (never for --collect-only, which
        # keeps nothing and must not detect the host), so a run killed in it is still seen.
        if not self.started_run and item.nodeid in self.session.run.selected:
            self.started_run = True
            self._write_run("running")
        outcome = yield
        # The test, its teardown and its verdicts are done: the case is final.
        result = item.stash.get(CASE_RESULT_KEY, None)
        if result is not None and result.kind in ("latency", "harness"):
            self._record(result)
        return outcome

    def _record(self, result: CaseResult) -> None:
        self.finished[result.test] = {"case": result.case_id, "status": result.status.value, "reason": result.reason}
        if result.status in KEPT and result.kind == "latency" and result.parent_latencies_s:
            try:
                self.written.append(self.place().append(self.entry(result)))
            except (HistoryError, OSError) as error:
                # A case's measurement stands; the run says loudly what the history lacks.
                self.finished[result.test]["history_error"] = str(error)
                result.notes.append(f"not kept in the history: {error}")
        self._write_run("running")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.started_run:
            self._write_run("interrupted" if self.session.run.interrupted else "complete")

    def _write_run(self, state: str) -> None:
        run = self.session.run
        try:
            self.place().write_run({
                "run": self.run_id,
                "state": state,
                "started": self.started,
                "updated": utc_now(),
                "storage_key": self.place().storage_key,
                "machine": self.place().machine,
                "host": platform.node(),
                "selected": list(run.selected),
                "finished": dict(self.finished),
                "unfinished": [node for node in run.selected if node not in self.finished],
                "exitstatus": run.exitstatus,
                "entries": [path.name for path in self.written],
                "environment": self.environment(),
            })
        except OSError as error:
            # The measurements stand; the summary says what the history lacks (a full disk, say).
            self.problem = f"the run file could not be written in {self.root} ({self.source}): {error}"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self._place is None:
            return
        for damaged in self._past.damaged if self._past else []:
            terminalreporter.write_line(f"history: {damaged.describe()}")
        if self.problem:
            terminalreporter.write_line(f"history: {self.problem}", red=True)
        terminalreporter.write_line(
            f"history: {len(self.written)} case(s) kept in {self.place().folder} (run {self.run_id}; {self.source})"
        )

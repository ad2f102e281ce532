"""pytest plugin of sdperf (its `pytest11` entry point): options, markers, storage per
profile, what happens to every case, and the summary.

Loads without torch, diffusers or openvino: collection, `--help` and `-m`
selection stay fast. Everything heavy runs in worker processes.
"""

from __future__ import annotations

import os

import pytest

from sdperf.pytest_plugin import benchmark_adapter as adapter
from sdperf.pytest_plugin import hookspecs, options, rootdir
from sdperf.pytest_plugin.session import CASE_RESULT_KEY, SESSION_KEY, SdperfSession, failure_line, session_of
from sdperf.reporting.next_steps import next_steps
from sdperf.reporting.table import results_table
from sdperf.storage.results import RESULT_SCHEMA_VERSION, Status

# Fixtures and case parametrisation.
pytest_plugins = ["sdperf.pytest_plugin.fixtures"]

MARKERS = {
    "pi4": "Raspberry Pi 4B (8 GB, CPU only): SD 1.5, 400x400, 31 steps",
    "pi5": "Raspberry Pi 5 (8 GB, CPU only): SD 1.5, 400x400, 31 steps",
    "sapphire_rapids": "Intel Xeon with AMX: SD 1.5, 512x512, 20 steps",
    "cuda_lowvram": "NVIDIA card with 6 GB (or capped to 6 GB): SD3 Medium, 1024x1024, 28 steps",
    "cpu": "any other CPU host: SD 1.5 at default settings",
    "harness": "measures the suite itself (harness overhead against a bare loop)",
}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    # `--sdperf-model DIR` (a separate argument) must not make DIR pytest's rootdir.
    rootdir.choose_root_again(early_config, args)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its storage and compare options
def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    session = SdperfSession(config, options.Settings.from_config(config))
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "sdperf-session")
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return
    adapter.refuse_unmeasurable_modes(config)
    _store_runs_per_profile(session)
    _compare_with_baseline(session)
    _keep_history(session)


def pytest_sessionstart(session: pytest.Session) -> None:
    adapter.show_one_table(session.config)


# The fixtures through which sdperf's cases time: pytest-benchmark must count those cases as benchmarks.
BENCHMARK_FIXTURES = ("sdperf_bench", "sdperf_harness")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    # --benchmark-only used to skip every sdperf case (no `benchmark` fixture by name), --benchmark-skip none.
    with adapter.seen_as_benchmarks(items, BENCHMARK_FIXTURES):
        return (yield)


def _keep_history(session: SdperfSession) -> None:
    """Every case that finishes goes into the history folder (outside the checkout) as it finishes."""
    from sdperf.pytest_plugin.history_recorder import HistoryRecorder
    from sdperf.storage.history import history_dir, unwritable_reason

    if (session.settings.history or "").strip().lower() == "off":
        return
    root, source = history_dir(session.settings.history)
    problem = unwritable_reason(root)
    if problem:
        raise pytest.UsageError(
            f"history folder {root} (from {source}): {problem}; give a writable folder with --sdperf-history DIR "
            "or SDPERF_HISTORY, or keep no history with --sdperf-history=off"
        )
    session.history = HistoryRecorder(session, root, source)
    session.config.pluginmanager.register(session.history, "sdperf-history")


def _store_runs_per_profile(session: SdperfSession) -> None:
    # pytest-benchmark keys its storage by OS and Python only, so a Pi 5 and a Xeon would
    # share one folder and --benchmark-compare would compare them. Unless the user chose a
    # storage, save and compare per profile. Only when the run saves or compares: the
    # profile's key may need host detection, and a run that keeps nothing needs none.
    config = session.config
    if adapter.storage_is_default(config) and adapter.wants_storage(config):
        adapter.set_storage(config, config.rootpath / ".benchmarks" / session.storage_key())
        session.own_storage = True


def _compare_with_baseline(session: SdperfSession) -> None:
    """A bare --benchmark-compare means this profile's newest baseline in baselines/<key>;
    a value keeps pytest-benchmark's meaning (runs in the storage). Either way every
    file compared against is validated first: a broken one stops the run, named."""
    from pathlib import Path

    from sdperf.storage.baselines import BaselineError, baseline_folder, latest_baseline, load_run

    config = session.config
    compare = adapter.compare_option(config)
    if not compare:
        return
    if compare is True and session.own_storage:
        key = session.storage_key()
        baseline = latest_baseline(config.rootpath, key)
        if baseline is None:
            note = (
                f"no baseline for {key} in {baseline_folder(config.rootpath, key)}: nothing compared; "
                "save a run with --benchmark-autosave, then make it the baseline with `sdperf promote RUN.json` "
                "(the saved run's path is printed after its table)"
            )
            if adapter.compare_fail_given(config):
                raise pytest.UsageError(f"--benchmark-compare-fail: {note}")
            adapter.compare_with(config, False)
            session.compare_note = note
            return
        files = [str(baseline)]
        adapter.compare_with(config, str(baseline))
    else:
        files = adapter.runs_in_storage(config, compare)
    for path in files:
        try:
            load_run(Path(path))
        except BaselineError as error:
            raise pytest.UsageError(f"--benchmark-compare: {error}") from None
    session.compare_note = (
        "compared with " + ", ".join(files) if files
        else f"--benchmark-compare: no saved run matches in {adapter.storage_text(config)}: nothing compared"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    outcome = yield
    # --benchmark-json is rewritten after every case: a run killed halfway keeps what it finished.
    if CASE_RESULT_KEY in item.stash:
        adapter.write_json_now(item.config)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    result = item.stash.get(CASE_RESULT_KEY, None)
    # A failure the case's own code did not record (a fixture's error, a crash in judging).
    if result is not None and report.when in ("setup", "call") and report.failed \
            and result.status in (Status.RUNNING, Status.PASSED):
        result.move_to(Status.FAILED, failure_line(report) if report.when == "call" else f"error in set-up: {failure_line(report)}")
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    sdperf = session.config.stash.get(SESSION_KEY, None)
    if sdperf is None:
        return
    sdperf.drop_empty_images_dir()
    _write_markdown(sdperf)
    # pytest-benchmark writes nothing when no case reached its timed rounds: the reasons still go out.
    adapter.write_json_now(session.config, only_if_nothing_timed=True)


def _write_markdown(session: SdperfSession) -> None:
    from sdperf.reporting.markdown import markdown_report

    if not session.results:
        return
    text = markdown_report(session.results, session.run_note(), title=f"sdperf: {session.storage_key()}",
                           controls=session.controls())
    markdown = session.settings.markdown
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text + "\n", encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as stream:
            stream.write(text + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    terminalreporter.write_sep("-", "sdperf results")
    note = session.run_note()
    if note:
        terminalreporter.write_line(note)
    # On a terminal the table fits its width; a log (CI, a file) keeps every column.
    width = config.get_terminal_writer().fullwidth if terminalreporter.isatty() else None
    for line in results_table(session.results, session.controls(), width=width):
        terminalreporter.write_line(line)
    # pytest-benchmark has saved by now (in its session finish, before this summary).
    saved = adapter.saved_runs(config)
    if saved:
        for line in next_steps(session.results, saved, session.storage_key(), session.settings.emulate, config.rootpath,
                               interrupted=session.run.interrupted):
            terminalreporter.write_line(line)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    import hashlib

    from sdperf.common.environment import PROCESS_START_VARIABLES
    from sdperf.common.packages import package_versions
    from sdperf.host.sensors import read_thermal

    session = session_of(config)
    settings = session.settings
    lock = config.rootpath / "constraints.txt"
    machine_info["sdperf"] = {
        "host": session.host().to_json(),
        "storage_key": session.storage_key(),
        "machine_id": adapter.machine_id(),
        "emulated_profile": settings.emulate,
        "thermal": read_thermal(settings.host_root).to_json(),
        "parent_environment": {name: os.environ.get(name) for name in PROCESS_START_VARIABLES},
        "packages": package_versions(),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
        # Threads, pools and allocator as each case's own worker saw them (saving happens
        # after the run, so every case that started a worker is here).
        "workers": {result.case_id: result.load["audit"] for result in session.results if "audit" in result.load},
    }


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    # pytest-benchmark warns with both machine_info dicts whole, and ours always differ
    # (per-case worker audits): kilobytes of JSON per run. Say what differs, in a line.
    from sdperf.storage.baselines import machine_differences

    saved = compared_benchmark["machine_info"]
    differences = machine_differences(machine_info, saved)
    compared_benchmark["machine_info"] = machine_info
    try:
        return (yield)
    finally:
        compared_benchmark["machine_info"] = saved
        if differences:
            session = session_of(config)
            session.compare_note = f"{session.compare_note or ''}; the baseline differs in: {', '.join(differences)}"


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    session = session_of(config)
    settings = session.settings
    # An invalid result (throttled, under-voltage) measured something else: never saved as timings.
    invalid = {result.test for result in session.results if result.status == Status.INVALID}
    output_json["benchmarks"] = [b for b in output_json["benchmarks"] if b.get("fullname") not in invalid]
    # pytest-benchmark leaves failed benchmarks out of its list; ours keeps every case with its reason.
    output_json["sdperf"] = {
        "schema": RESULT_SCHEMA_VERSION,
        "images_dir": str(session.images_dir()) if settings.save_images else None,
        "compared": session.compare_note,
        "interleaved_with": (
            {name: profile.control for name, profile in settings.profiles.items()} if settings.interleave else None
        ),
        "ab": session.ab_json(),
        "run": session.run.to_json(session.results),
        "cases": [result.to_json() for result in session.results],
    }

"""pytest plugin of sdperf: options, markers, case parametrisation, fixtures, summary.

Loads without torch, diffusers or openvino: collection, `--help` and `-m`
selection stay fast. Everything heavy runs in worker processes.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from sdperf import hookspecs, settings as settings_module
from sdperf.bench import CaseBench
from sdperf.correctness import CaseCheck, GoldenPolicy
from sdperf.cases import Case, make_case
from sdperf.models.store import ModelSpec, pipeline_class_of
from sdperf.profiles import PROFILE_NAMES
from sdperf.pyenvs import LockError
from sdperf.recipes import REGISTRY
from sdperf.requirements import HostFacts, host_facts, unmet_for
from sdperf.report import results_table
from sdperf.results import RESULT_SCHEMA_VERSION, CaseResult

MARKERS = {
    "pi4": "Raspberry Pi 4B (8 GB, CPU only): SD 1.5, 400x400, 31 steps",
    "pi5": "Raspberry Pi 5 (8 GB, CPU only): SD 1.5, 400x400, 31 steps",
    "sapphire_rapids": "Intel Xeon with AMX: SD 1.5, 512x512, 20 steps",
    "cuda_lowvram": "NVIDIA card with 6 GB (or capped to 6 GB): SD3 Medium, 1024x1024, 28 steps",
    "cpu": "any other CPU host: SD 1.5 at default settings",
    "harness": "measures the suite itself (harness overhead against a bare loop)",
}

settings_key = pytest.StashKey[settings_module.Settings]()
results_key = pytest.StashKey[list[CaseResult]]()
compare_note_key = pytest.StashKey[str]()
own_storage_key = pytest.StashKey[bool]()  # True when sdperf chose the run storage
host_key = pytest.StashKey[object]()
facts_key = pytest.StashKey[HostFacts]()
case_result_key = pytest.StashKey[CaseResult]()
images_key = pytest.StashKey[Path]()
ab_sides_key = pytest.StashKey[object]()  # sdperf.ab.Sides, or the LockError that stopped them


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_module.add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its storage and compare options
def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    config.stash[settings_key] = settings_module.Settings.from_config(config)
    config.stash[results_key] = []
    _store_runs_per_profile(config)
    _compare_with_baseline(config)


def detected_host(config: pytest.Config):
    """The host as detected under --sdperf-host-root, once per run."""
    if host_key not in config.stash:
        from sdperf.hardware import detect_host

        config.stash[host_key] = detect_host(config.stash[settings_key].host_root)
    return config.stash[host_key]


def storage_key(config: pytest.Config) -> str:
    """Folder name that keeps runs of different hardware, and emulated runs, apart."""
    settings = config.stash[settings_key]
    key = f"emulated-{settings.emulate}" if settings.emulate else detected_host(config).primary
    # An A/B run's timings are B's beside A's: kept apart from the suite's own runs.
    return f"ab-{key}" if settings.ab else key


_DEFAULT_STORAGE = "file://./.benchmarks"


def _store_runs_per_profile(config: pytest.Config) -> None:
    # pytest-benchmark keys its storage by OS and Python only, so a Pi 5 and a Xeon would
    # share one folder and --benchmark-compare would compare them. Unless the user chose a
    # storage, save and compare per profile. Runs before pytest-benchmark reads the option.
    if getattr(config.option, "benchmark_storage", None) == _DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{config.rootpath / '.benchmarks' / storage_key(config)}"
        config.stash[own_storage_key] = True


def _compare_with_baseline(config: pytest.Config) -> None:
    """A bare --benchmark-compare means this profile's newest baseline in baselines/<key>;
    a value keeps pytest-benchmark's meaning (runs in the storage). Either way every
    file compared against is validated first: a broken one stops the run, named."""
    from sdperf.baselines import BaselineError, baseline_folder, latest_baseline, load_run

    compare = getattr(config.option, "benchmark_compare", None)
    if not compare:
        return
    if compare is True and config.stash.get(own_storage_key, False):
        key = storage_key(config)
        baseline = latest_baseline(config.rootpath, key)
        if baseline is None:
            note = (
                f"no baseline for {key} in {baseline_folder(config.rootpath, key)}: nothing compared; "
                "promote a valid run with `sdperf promote RUN.json`"
            )
            if getattr(config.option, "benchmark_compare_fail", None):
                raise pytest.UsageError(f"--benchmark-compare-fail: {note}")
            config.option.benchmark_compare = False
            config.stash[compare_note_key] = note
            return
        files = [baseline]
        config.option.benchmark_compare = str(baseline)
    else:
        from pytest_benchmark.storage.file import FileStorage
        from pytest_benchmark.utils import get_machine_id

        # Otherwise pytest-benchmark's meaning: the newest run in, or a run named from, the storage.
        storage = str(config.option.benchmark_storage).removeprefix("file://")
        runs = FileStorage(storage, logger=None, default_machine_id=get_machine_id())
        files = runs.query("[0-9][0-9][0-9][0-9]_")[-1:] if compare is True else runs.query(str(compare))
    for path in files:
        try:
            load_run(Path(path))
        except BaselineError as error:
            raise pytest.UsageError(f"--benchmark-compare: {error}") from None
    config.stash[compare_note_key] = (
        "compared with " + ", ".join(str(path) for path in files) if files
        else f"--benchmark-compare: no saved run matches in {config.option.benchmark_storage}: nothing compared"
    )


def _find_baseline(config: pytest.Config):
    """Lookup of a test's entry in the run compared against (as pytest-benchmark loaded it)."""
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


def host_profiles(config: pytest.Config) -> tuple[tuple[str, ...], str]:
    """Profiles this host runs, and a one-line description of the host."""
    settings = config.stash[settings_key]
    if settings.emulate:
        return (settings.emulate,), f"emulating {settings.emulate} (--sdperf-profile)"
    host = detected_host(config)
    return tuple(host.matches), f"host detected as {host.primary}: {host.reasons[host.primary]}"


def build_cases(config: pytest.Config) -> list[Case]:
    settings = config.stash[settings_key]
    cases = []
    for profile_name in PROFILE_NAMES:
        profile = settings.profiles.get(profile_name)
        if profile is None:
            continue
        names = profile.recipes if settings.recipes is None else settings.recipes
        for recipe_name in names:
            recipe = REGISTRY[recipe_name]
            if profile_name not in recipe.profiles:
                continue
            model = settings.model or ModelSpec(name=profile.builtin_model)
            cases.append(make_case(
                profile, recipe, model, settings.run_override, extra_env=settings.worker_env(recipe.device)
            ))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdperf_case" not in metafunc.fixturenames:
        return
    cases = build_cases(metafunc.config)
    params = [pytest.param(case, id=case.id, marks=getattr(pytest.mark, case.profile)) for case in cases]
    metafunc.parametrize("sdperf_case", params)


def ab_sides(config: pytest.Config):
    """The two environments of --sdperf-ab, created on first use (`sdperf ab` creates them
    before pytest starts). A lock that cannot give an environment fails every A/B case."""
    from sdperf.ab import prepare

    if ab_sides_key not in config.stash:
        base, head = config.stash[settings_key].ab
        try:
            config.stash[ab_sides_key] = prepare(base, head, say=_say_live(config))
        except LockError as error:
            config.stash[ab_sides_key] = error
    found = config.stash[ab_sides_key]
    if isinstance(found, Exception):
        raise found
    return found


def _skip_reason(config: pytest.Config, case: Case, check_host: bool, kind: str = "latency") -> str | None:
    settings = config.stash[settings_key]
    profiles, host = host_profiles(config) if check_host else ((case.profile,), "")
    if case.profile not in profiles:
        return (
            f"profile {case.profile} does not run here ({host}); "
            f"run on such a machine, or emulate it with --sdperf-profile {case.profile}"
        )
    wanted = settings.profiles[case.profile].pipeline
    found = pipeline_class_of(case.model)
    if found != wanted:
        return f"profile {case.profile} needs a {wanted} model; {case.model.name} is a {found or 'unknown pipeline'}"
    if settings.ab and kind == "latency":
        from sdperf.ab import skip_reason

        return skip_reason(case, ab_sides(config), _host_facts(config))
    return unmet_for(case, _host_facts(config))


def _host_facts(config: pytest.Config) -> HostFacts:
    if facts_key not in config.stash:
        config.stash[facts_key] = host_facts(detected_host(config))
    return config.stash[facts_key]


@pytest.fixture
def sdperf_case(request: pytest.FixtureRequest) -> Case:
    """The benchmark case of this test item (profile, recipe, model, workload, run size)."""
    return request.param


def _register(request: pytest.FixtureRequest, case: Case, kind: str, check_host: bool) -> CaseResult:
    """Record the case's result (whatever happens to it) and skip it, with the reason, if it cannot run here."""
    config = request.config
    profile = config.stash[settings_key].profiles[case.profile]
    # A correctness check names itself when it runs; until then (or when skipped) the test does.
    label = {"latency": case.id, "harness": f"harness:{case.id}", "check": f"{case.id} {request.node.originalname}"}[kind]
    result = CaseResult(
        case_id=label, test=request.node.nodeid, profile=case.profile, recipe=case.recipe,
        model=case.model.name, workload=case.workload.to_json(), kind=kind,
    )
    for reference in profile.references:
        if kind == "latency" and reference.recipe == case.recipe:
            why_not = (
                "this run uses the built-in model" if case.model.builtin
                else "this run's workload differs from the report's" if case.workload != profile.workload
                else ""
            )
            result.reference = {**reference.__dict__, "comparable": not why_not, "why_not": why_not}
    config.stash[results_key].append(result)
    request.node.stash[case_result_key] = result
    try:
        reason = _skip_reason(config, case, check_host, kind)
    except LockError as error:  # no environment for a lock of --sdperf-ab
        result.status, result.reason = "failed", str(error)
        pytest.fail(f"case {case.id}: {error}", pytrace=False)
    if reason:
        result.status, result.reason = "skipped", reason
        pytest.skip(reason)
    return result


def _case_bench(request: pytest.FixtureRequest, case: Case, kind: str, check_host: bool) -> CaseBench:
    settings = request.config.stash[settings_key]
    result = _register(request, case, kind, check_host)
    profile = settings.profiles[case.profile]
    control = None
    save_png = _image_path(request.config, case, kind)
    sides, control_png = None, None
    if settings.ab and kind == "latency":
        from sdperf.ab import side_cases

        sides = ab_sides(request.config)
        control, case = side_cases(case, sides)
        # Both sides' last images are kept until compared; a changed one stays for review.
        folder = run_images_dir(request.config)
        control_png, save_png = folder / f"{case.id}-a.png", folder / f"{case.id}-b.png"
    elif settings.interleave and kind == "latency":
        control_recipe = REGISTRY[profile.control]
        control = make_case(
            profile, control_recipe, case.model, settings.run_override, extra_env=settings.worker_env(control_recipe.device)
        )
    return CaseBench(
        request, case, result, settings.progress_every_s, _say_live(request.config), settings.host_root,
        profile.limits, save_png=save_png, policy=profile.verdict,
        control=control, find_baseline=_find_baseline(request.config) if kind == "latency" else None,
        ab_sides=sides, control_png=control_png, keep_images=settings.save_images is not None,
    )


def run_images_dir(config: pytest.Config) -> Path:
    """This run's image folder: named by time and profile, and written into the saved JSON."""
    if images_key not in config.stash:
        settings = config.stash[settings_key]
        base = settings.save_images or config.rootpath / ".benchmarks" / storage_key(config) / "images"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = base / f"{stamp}-{storage_key(config)}"
        folder.mkdir(parents=True, exist_ok=True)
        config.stash[images_key] = folder
    return config.stash[images_key]


def _image_path(config: pytest.Config, case: Case, kind: str) -> Path | None:
    if config.stash[settings_key].save_images is None:
        return None
    return run_images_dir(config) / f"{case.id}{'' if kind == 'latency' else '-' + kind}.png"


@pytest.fixture
def sdperf_bench(request: pytest.FixtureRequest, sdperf_case: Case) -> CaseBench:
    """Runs `sdperf_case` in a fresh worker process; see `CaseBench.latency`."""
    return _case_bench(request, sdperf_case, "latency", check_host=True)


@pytest.fixture
def sdperf_harness(request: pytest.FixtureRequest) -> CaseBench:
    """The generic `cpu` profile's `fp32` case, for measuring the suite itself on any host."""
    settings = request.config.stash[settings_key]
    profile = settings.profiles["cpu"]
    model = settings.model or ModelSpec(name=profile.builtin_model)
    case = make_case(profile, REGISTRY["fp32"], model, settings.run_override)
    return _case_bench(request, case, "harness", check_host=False)


@pytest.fixture
def sdperf_check(request: pytest.FixtureRequest, sdperf_case: Case) -> CaseCheck:
    """Correctness checks of `sdperf_case`: see `CaseCheck.determinism` and `CaseCheck.fidelity`."""
    config = request.config
    settings = config.stash[settings_key]
    result = _register(request, sdperf_case, "check", check_host=True)
    profile = settings.profiles[sdperf_case.profile]
    control_recipe = REGISTRY[profile.control]
    reference = make_case(
        profile, control_recipe, sdperf_case.model, settings.run_override, extra_env=settings.worker_env(control_recipe.device)
    )
    golden = GoldenPolicy(
        root=settings.golden_dir or config.rootpath / "baselines" / "golden",
        storage_key=storage_key(config),
        record=settings.record_golden,
    )
    return CaseCheck(
        sdperf_case, result, REGISTRY[sdperf_case.recipe], reference, run_images_dir(config),
        keep_images=settings.save_images is not None, golden=golden,
    )


def _say_live(config: pytest.Config):
    """Write a line to the terminal while a test runs (output capture would hide it)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    result = item.stash.get(case_result_key, None)
    if result is not None and report.when == "call" and report.failed and result.status == "running":
        result.status = "failed"
        result.reason = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    # Checks work in the run's image folder; without --sdperf-save-images it ends up empty.
    folder = config.stash.get(images_key, None)
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    _write_markdown(config)


def _write_markdown(config: pytest.Config) -> None:
    import os

    from sdperf.markdown import markdown_report

    results = config.stash.get(results_key, [])
    if not results:
        return
    text = markdown_report(results, run_note(config), title=f"sdperf: {storage_key(config)}")
    markdown = config.stash[settings_key].markdown
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text + "\n", encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as stream:
            stream.write(text + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(results_key, [])
    if not results:
        return
    terminalreporter.write_sep("-", "sdperf results")
    note = run_note(config)
    if note:
        terminalreporter.write_line(note)
    for line in results_table(results):
        terminalreporter.write_line(line)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    import hashlib
    import os

    from pytest_benchmark.utils import get_machine_id

    from sdperf.cases import PROCESS_START_VARIABLES
    from sdperf.hardware import read_thermal
    from sdperf.worker.audit import package_versions

    settings = config.stash[settings_key]
    lock = config.rootpath / "constraints.txt"
    machine_info["sdperf"] = {
        "host": detected_host(config).to_json(),
        "storage_key": storage_key(config),
        "machine_id": get_machine_id(),
        "emulated_profile": settings.emulate,
        "thermal": read_thermal(settings.host_root).to_json(),
        "parent_environment": {name: os.environ.get(name) for name in PROCESS_START_VARIABLES},
        "packages": package_versions(),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
        # Threads, pools and allocator as each case's own worker saw them (saving happens
        # after the run, so every case that started a worker is here).
        "workers": {
            result.case_id: result.load["audit"]
            for result in config.stash.get(results_key, [])
            if "audit" in result.load
        },
    }


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    # pytest-benchmark warns with both machine_info dicts whole, and ours always differ
    # (per-case worker audits): kilobytes of JSON per run. Say what differs, in a line.
    from sdperf.baselines import machine_differences

    saved = compared_benchmark["machine_info"]
    differences = machine_differences(machine_info, saved)
    compared_benchmark["machine_info"] = machine_info
    try:
        return (yield)
    finally:
        compared_benchmark["machine_info"] = saved
        if differences:
            note = config.stash.get(compare_note_key, "")
            config.stash[compare_note_key] = f"{note}; the baseline differs in: {', '.join(differences)}"


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    results = config.stash.get(results_key, [])
    # An invalid result (throttled, under-voltage) measured something else: never saved as timings.
    invalid = {result.test for result in results if result.status == "invalid"}
    output_json["benchmarks"] = [b for b in output_json["benchmarks"] if b.get("fullname") not in invalid]
    # pytest-benchmark leaves failed benchmarks out of its list; ours keeps every case with its reason.
    output_json["sdperf"] = {
        "schema": RESULT_SCHEMA_VERSION,
        "images_dir": str(run_images_dir(config)) if config.stash[settings_key].save_images else None,
        "compared": config.stash.get(compare_note_key, None),
        "interleaved_with": (
            {name: profile.control for name, profile in config.stash[settings_key].profiles.items()}
            if config.stash[settings_key].interleave else None
        ),
        "ab": _ab_json(config),
        "cases": [result.to_json() for result in config.stash.get(results_key, [])],
    }


def run_note(config: pytest.Config) -> str | None:
    """What the run was compared with: the baseline note, and an A/B run's two sides."""
    notes = [config.stash.get(compare_note_key, None)]
    sides = config.stash.get(ab_sides_key, None)
    if sides is not None and not isinstance(sides, Exception):
        changes = ", ".join(sides.changes) or "nothing (identical package sets)"
        notes.append(
            f"A/B: A = {sides.a.lock} ({sides.a.env}), B = {sides.b.lock} ({sides.b.env}); "
            f"B installs differently: {changes}"
        )
    return "\n".join(note for note in notes if note) or None


def _ab_json(config: pytest.Config):
    sides = config.stash.get(ab_sides_key, None)
    if not config.stash[settings_key].ab:
        return None
    if sides is None or isinstance(sides, Exception):
        return {"error": str(sides) if sides else "no A/B case ran"}
    return sides.to_json()

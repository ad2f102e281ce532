"""Cases as test parameters, and the fixtures a benchmark or check test gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdperf.config.profiles import PROFILE_NAMES
from sdperf.config.recipes import REGISTRY
from sdperf.execution.cases import Case, make_case
from sdperf.execution.environments import LockError
from sdperf.host.capabilities import unmet_for
from sdperf.models.store import ModelSpec, WrongPipeline, why_not_comparable, wrong_pipeline
from sdperf.pytest_plugin.benchmark_adapter import baseline_lookup
from sdperf.pytest_plugin.checks import CaseCheck, GoldenPolicy
from sdperf.pytest_plugin.latency import CaseBench
from sdperf.pytest_plugin.session import CASE_RESULT_KEY, SdperfSession, session_of
from sdperf.storage.results import CaseResult, Status


def case_for(session: SdperfSession, profile_name: str, recipe_name: str, model: ModelSpec) -> Case:
    """The case of one profile and recipe with this run's settings (rounds, VRAM cap, emulation)."""
    settings = session.settings
    recipe = REGISTRY[recipe_name]
    return make_case(
        settings.profiles[profile_name], recipe, model, settings.run_override,
        extra_env=settings.worker_env(recipe.device),
        inherit_env=settings.inherit_env,
    )


def build_cases(session: SdperfSession) -> list[Case]:
    settings = session.settings
    cases = []
    for profile_name in PROFILE_NAMES:
        profile = settings.profiles.get(profile_name)
        if profile is None:
            continue
        names = profile.recipes if settings.recipes is None else settings.recipes
        for recipe_name in names:
            if profile_name not in REGISTRY[recipe_name].profiles:
                continue
            cases.append(case_for(session, profile_name, recipe_name, settings.model or ModelSpec(name=profile.builtin_model)))
    return cases


# Case id -> case, for the cases parametrised in this run.
CASES_KEY = pytest.StashKey[dict]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdperf_case" not in metafunc.fixturenames:
        return
    cases = build_cases(session_of(metafunc.config))
    known = metafunc.config.stash.setdefault(CASES_KEY, {})
    known.update((case.id, case) for case in cases)
    # The parameter is the case's id: pytest-benchmark saves it (params, CSV) as readable text.
    params = [pytest.param(case.id, id=case.id, marks=getattr(pytest.mark, case.profile)) for case in cases]
    metafunc.parametrize("sdperf_case", params, indirect=True)


def say_live(config: pytest.Config):
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


def _skip_reason(session: SdperfSession, case: Case, check_host: bool, kind: str) -> str | None:
    settings = session.settings
    profiles, host = session.host_profiles() if check_host else ((case.profile,), "")
    if case.profile not in profiles:
        if settings.emulate:
            native = case.profile in session.host().matches
            return (
                f"this run emulates {settings.emulate} (--sdperf-profile {settings.emulate}) and runs only its cases; "
                + (f"run without --sdperf-profile for this host's own {case.profile} cases" if native
                   else f"emulate {case.profile} with --sdperf-profile {case.profile}")
            )
        return (
            f"profile {case.profile} does not run here ({host}); "
            f"run on such a machine, or emulate it with --sdperf-profile {case.profile}"
        )
    wrong = wrong_pipeline(case.model, case.profile, settings.profiles[case.profile].pipeline)
    if wrong:  # a failure, not a skip: a nightly pointed at the wrong model must go red
        raise WrongPipeline(wrong)
    if settings.ab and kind == "latency":
        from sdperf.execution.ab_sides import skip_reason

        return skip_reason(case, session.ab_sides(say_live(session.config)), session.host_facts())
    return unmet_for(case, session.host_facts())


def _register(request: pytest.FixtureRequest, case: Case, kind: str, check_host: bool) -> CaseResult:
    """Record the case's result (whatever happens to it) and skip it, with the reason, if it cannot run here."""
    session = session_of(request.config)
    profile = session.settings.profiles[case.profile]
    # A correctness check names itself when it runs; until then (or when skipped) the test does.
    label = {"latency": case.id, "harness": f"harness:{case.id}", "check": f"{case.id} {request.node.originalname}"}[kind]
    result = CaseResult(
        case_id=label, test=request.node.nodeid, profile=case.profile, recipe=case.recipe,
        model=case.model.name, workload=case.workload.to_json(), kind=kind,
    )
    result.notes.extend(case.notes)
    for reference in profile.references:
        if kind == "latency" and reference.recipe == case.recipe:
            why_not = why_not_comparable(case.model, case.workload, profile.workload)
            result.reference = {**reference.__dict__, "comparable": not why_not, "why_not": why_not}
    session.results.append(result)
    request.node.stash[CASE_RESULT_KEY] = result
    try:
        reason = _skip_reason(session, case, check_host, kind)
    except (LockError, WrongPipeline) as error:  # no environment for a lock of --sdperf-ab; a wrong model
        result.move_to(Status.FAILED, str(error))
        raise pytest.fail.Exception(f"case {case.id}: {error}", pytrace=False) from None  # one line, no chain
    if reason:
        result.move_to(Status.SKIPPED, reason)
        pytest.skip(reason)
    return result


def _image_path(session: SdperfSession, case: Case, kind: str) -> Path | None:
    if session.settings.save_images is None:
        return None
    return session.images_dir() / f"{case.id}{'' if kind == 'latency' else '-' + kind}.png"


def _case_bench(request: pytest.FixtureRequest, case: Case, kind: str, check_host: bool) -> CaseBench:
    session = session_of(request.config)
    settings = session.settings
    result = _register(request, case, kind, check_host)
    profile = settings.profiles[case.profile]
    control = None
    save_png = _image_path(session, case, kind)
    sides, control_png = None, None
    if settings.ab and kind == "latency":
        from sdperf.execution.ab_sides import side_cases

        sides = session.ab_sides(say_live(request.config))
        control, case = side_cases(case, sides)
        # Both sides' last images are kept until compared; a changed one stays for review.
        folder = session.images_dir()
        control_png, save_png = folder / f"{case.id}-a.png", folder / f"{case.id}-b.png"
    elif settings.interleave and kind == "latency":
        control = case_for(session, case.profile, profile.control, case.model)
    # The run-to-run noise this machine's history shows for the case: stored-baseline verdicts use it.
    learned = session.history.learned_noise(case.id, profile.verdict) if session.history and kind == "latency" else None
    images = session.run_images() if kind == "latency" and sides is None else None
    if images is not None and save_png is None and session.checks_selected:
        save_png = images.png_path(case)  # for the checks only: removed at the end of the run
    return CaseBench(
        request, case, result, settings.progress_every_s, say_live(request.config), settings.host_root,
        profile.limits, save_png=save_png, policy=profile.verdict,
        control=control, find_baseline=baseline_lookup(request.config) if kind == "latency" else None,
        ab_sides=sides, control_png=control_png, keep_images=settings.save_images is not None, images=images,
        learned_noise=learned,
    )


@pytest.fixture
def sdperf_case(request: pytest.FixtureRequest) -> Case:
    """The benchmark case of this test item (profile, recipe, model, workload, run size)."""
    return request.config.stash[CASES_KEY][request.param]


@pytest.fixture
def sdperf_bench(request: pytest.FixtureRequest, sdperf_case: Case) -> CaseBench:
    """Runs `sdperf_case` in a fresh worker process; see `CaseBench.latency`."""
    return _case_bench(request, sdperf_case, "latency", check_host=True)


@pytest.fixture
def sdperf_harness(request: pytest.FixtureRequest) -> CaseBench:
    """The generic `cpu` profile's `fp32` case, for measuring the suite itself on any host."""
    session = session_of(request.config)
    model = session.settings.model or ModelSpec(name=session.settings.profiles["cpu"].builtin_model)
    return _case_bench(request, case_for(session, "cpu", "fp32", model), "harness", check_host=False)


@pytest.fixture
def sdperf_check(request: pytest.FixtureRequest, sdperf_case: Case) -> CaseCheck:
    """Correctness checks of `sdperf_case`: see `CaseCheck.determinism` and `CaseCheck.fidelity`."""
    session = session_of(request.config)
    settings = session.settings
    result = _register(request, sdperf_case, "check", check_host=True)
    profile = settings.profiles[sdperf_case.profile]
    reference = case_for(session, sdperf_case.profile, profile.control, sdperf_case.model)
    golden = GoldenPolicy(
        root=settings.golden_dir or request.config.rootpath / "baselines" / "golden",
        storage_key=session.storage_key(),
        record=settings.record_golden,
    )
    return CaseCheck(
        sdperf_case, result, REGISTRY[sdperf_case.recipe], reference, session.run_images(), session.images_dir(),
        golden=golden,
    )

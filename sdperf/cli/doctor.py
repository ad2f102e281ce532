"""`sdperf doctor` end to end: the host, the workers' self-reports, the findings (`sdperf.host.doctor`).

Workers take their thread variables from the profile and the recipe, never from the shell
(`Case.worker_environment`), so the doctor audits the environments the benchmarks start with:
the control recipe's, and one worker for each other thread setting among the profile's thread
recipes that can run here. Recipes with the same thread variables share one worker: the thread
pools depend on those alone, and each worker costs a torch import (seconds on a Pi).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sdperf.config.profiles import Profile
from sdperf.config.recipes import REGISTRY, THREAD_VARIABLES, Recipe
from sdperf.execution.cases import Case, make_case
from sdperf.host.capabilities import HostFacts, unmet_for
from sdperf.host.doctor import WorkerRun, describe_torch_blas, torch_blas
from sdperf.models.store import ModelSpec

# The audit imports torch and reads its pools; it loads no model.
AUDIT_TIMEOUT_S = 120.0

# A worker's self-report for a case, or None and why it could not start.
Audit = Callable[[Case], tuple[Mapping | None, str | None]]


def sets_threads(recipe: Recipe) -> bool:
    """A thread recipe: it sets or removes thread variables itself, instead of taking the profile's."""
    return any(name in recipe.env for name in THREAD_VARIABLES)


def thread_setting(case: Case) -> tuple[tuple[str, str], ...]:
    """The thread variables the case's worker starts with: what decides its thread pools."""
    environ = case.worker_environment()
    return tuple((name, environ[name]) for name in THREAD_VARIABLES if name in environ)


def doctor_cases(profile: Profile, cores: int | None = None, cpus: int | None = None) -> list[Case]:
    """The profile's control case, then one case per thread recipe of the profile, in its order."""
    names = [profile.control, *(n for n in profile.recipes if n != profile.control and sets_threads(REGISTRY[n]))]
    model = ModelSpec(name=profile.builtin_model)
    return [
        make_case(profile, REGISTRY[name], model, {"timeout_s": AUDIT_TIMEOUT_S}, cores=cores, cpus=cpus)
        for name in names
    ]


def runnable_here(cases: Sequence[Case], facts: HostFacts) -> tuple[list[Case], list[str]]:
    """The cases that can run here, and why the others cannot. The control always stays: its
    audit loads no model, so it runs where the recipe's own needs (a GPU) are missing."""
    kept, reasons = [cases[0]], []
    for case in cases[1:]:
        reason = unmet_for(case, facts)
        if reason is None:
            kept.append(case)
        else:
            reasons.append(reason)
    return kept, reasons


def group_by_thread_setting(cases: Sequence[Case]) -> list[list[Case]]:
    """Cases starting with the same thread variables, together; the control's group first."""
    groups: dict[tuple[tuple[str, str], ...], list[Case]] = {}
    for case in cases:
        groups.setdefault(thread_setting(case), []).append(case)
    return list(groups.values())


def audit_in_worker(case: Case) -> tuple[Mapping | None, str | None]:
    """The worker's self-report (`sdperf.worker.audit`), or why it could not start."""
    from sdperf.execution.process import Worker, WorkerFailed

    try:
        with Worker(case) as worker:
            worker.start()
            return worker.request("audit")["audit"], None
    except WorkerFailed as error:
        return None, str(error)


def audit_groups(
    groups: Sequence[Sequence[Case]], audit: Audit = audit_in_worker
) -> list[tuple[WorkerRun, str | None]]:
    """One worker per group, started with its first case's settings: (run, start-up error or None)."""
    runs = []
    for group in groups:
        report, error = audit(group[0])
        run = WorkerRun(
            recipes=tuple(case.recipe for case in group),
            environ=group[0].worker_environment(),
            audit=report,
            takes_profile_threads=any(not sets_threads(REGISTRY[case.recipe]) for case in group),
        )
        runs.append((run, error))
    return runs


def _pools_line(audit: Mapping) -> str:
    pools = ", ".join(sorted(f"{p.get('internal_api')} {p.get('num_threads')}" for p in audit.get("threadpools") or []))
    return f"torch {audit.get('torch_threads')} threads; pools: {pools}"


def describe_runs(runs: Sequence[tuple[WorkerRun, str | None]], not_audited: Sequence[str]) -> list[str]:
    """What each worker ran with, for the lines above the findings."""
    (control, error), others = runs[0], runs[1:]
    if control.audit is None:
        lines = [f"the worker could not start with the profile's settings: {error}"]
    else:
        allocators = control.audit.get("allocators") or "libc"
        lines = [
            f"worker: {_pools_line(control.audit)}; allocators: {allocators}",
            f"torch computes with {describe_torch_blas(torch_blas(control.audit))}",
        ]
    if others:
        lines.append("thread recipes, one worker per thread setting:")
    for run, error in others:
        state = _pools_line(run.audit) if run.audit is not None else f"could not start: {error}"
        lines.append(f"  {', '.join(run.recipes)} ({run.thread_setting}): {state}")
    lines.extend(f"not audited: {reason}" for reason in not_audited)
    return lines


def run_doctor(requested_profile: str | None, host_root: Path) -> int:
    """`sdperf doctor [--profile NAME] [--host-root DIR]`: prints the findings, returns the exit status."""
    from sdperf.config.profiles import ProfileError, check_profile_name, load_profiles
    from sdperf.config.recipes import ALLOCATORS
    from sdperf.execution.environments import environment_python
    from sdperf.host.capabilities import host_facts
    from sdperf.host.detection import detect_host
    from sdperf.host.devices import find_library
    from sdperf.host.doctor import diagnose, exit_code, format_findings
    from sdperf.host.pi import read_throttle
    from sdperf.host.sensors import read_thermal

    root = Path(host_root)
    host = detect_host(root)
    try:
        name = check_profile_name(requested_profile, "--profile") if requested_profile else host.primary
    except ProfileError as error:
        print(f"sdperf: {error}", file=sys.stderr)
        return 2
    profile = load_profiles()[name]
    print(f"host: {host.reasons[host.primary]}")
    how = "requested" if requested_profile else "detected"
    print(f"profile: {name} ({how}); matches here: {', '.join(host.matches)}")
    cases, not_audited = runnable_here(doctor_cases(profile), host_facts(host, environment_python))
    runs = audit_groups(group_by_thread_setting(cases))
    print("\n".join(describe_runs(runs, not_audited)))
    control, others = runs[0][0], [run for run, _ in runs[1:]]
    findings = diagnose(
        host,
        control.audit,
        control.environ,
        throttle=read_throttle(root),
        profile=name,
        libraries={library: find_library(soname, root) for soname, library in ALLOCATORS.items()},
        thermal=read_thermal(root),
        recipe_runs=others,
        control_recipes=control.recipes,
    )
    print()
    print(format_findings(findings))
    return exit_code(findings)

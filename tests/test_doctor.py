"""Each doctor check fires on bad data and stays quiet on good data."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from sdperf.cli.doctor import audit_groups, describe_runs, doctor_cases, group_by_thread_setting, runnable_here
from sdperf.config.profiles import load_profiles
from sdperf.host.capabilities import HostFacts
from sdperf.host.cpu import CpuInfo
from sdperf.host.detection import HostInfo, match_profiles
from sdperf.host.devices import GpuInfo
from sdperf.host.doctor import (
    CHECKS,
    LEVELS,
    Finding,
    WorkerRun,
    describe_torch_blas,
    diagnose,
    exit_code,
    format_findings,
    torch_blas,
)
from sdperf.host.pi import PiInfo, ThrottleState
from sdperf.host.sensors import ThermalState

# ------------------------------------------------------------------ builders


def make_host(
    kind: str = "plain", logical: int = 8, physical: int | None = 4, gpus: tuple[GpuInfo, ...] = ()
) -> HostInfo:
    """A HostInfo for "plain" x86, "spr" (Sapphire Rapids), "pi5" or "pi4"."""
    pi = None
    if kind == "spr":
        cpu = CpuInfo("x86_64", "GenuineIntel", "Xeon", 6, 143,
                      frozenset({"amx_tile", "amx_bf16"}), logical, physical)
    elif kind in ("pi5", "pi4"):
        cpu = CpuInfo("aarch64", "ARM", "Cortex-A76", None, None, frozenset(), 4, 4)
        soc = {"pi5": "brcm,bcm2712", "pi4": "brcm,bcm2711"}[kind]
        pi = PiInfo(kind, f"Raspberry Pi {kind[-1]}", (f"raspberrypi,{kind[-1]}-model-b", soc),
                    None, None, None)
    else:
        cpu = CpuInfo("x86_64", "GenuineIntel", "Xeon", 6, 106, frozenset(), logical, physical)
    matches, reasons = match_profiles(cpu, pi, gpus, 8192)
    return HostInfo(cpu, pi, gpus, 8192, matches, MappingProxyType(reasons))


GOOD_ENV = {"OMP_NUM_THREADS": "4"}


def good_audit(**extra: Any) -> dict[str, Any]:
    audit: dict[str, Any] = {
        "torch_threads": 4,
        "torch_interop_threads": 1,
        "threadpools": [
            {"user_api": "openmp", "internal_api": "openmp", "num_threads": 4,
             "version": None, "filepath": "/usr/lib/libgomp.so.1"},
            {"user_api": "blas", "internal_api": "openblas", "num_threads": 1,
             "version": "0.3.27", "filepath": "/site/numpy.libs/libopenblas.so",
             "threading_layer": "pthreads"},
        ],
        "allocators": [],
    }
    audit.update(extra)
    return audit


SITE = "/home/pi/sd/.venv/lib/python3.11/site-packages"
TORCH_OPENBLAS = f"{SITE}/torch.libs/libopenblasp-r0-2eadb500.3.29.so"
NUMPY_OPENBLAS = f"{SITE}/numpy.libs/libscipy_openblas64_-32a4b2a6.so"


def _openblas(path: str, threads: int) -> dict[str, Any]:
    return {"user_api": "blas", "internal_api": "openblas", "num_threads": threads, "prefix": "libopenblas",
            "filepath": path, "version": "0.3.29", "threading_layer": "pthreads", "architecture": "neoversen1"}


def _gomp(path: str, threads: int) -> dict[str, Any]:
    return {"user_api": "openmp", "internal_api": "openmp", "num_threads": threads, "prefix": "libgomp",
            "filepath": path, "version": None}


def aarch64_audit(environ: Mapping[str, str], cores: int = 4) -> dict[str, Any]:
    """A worker of torch's aarch64 wheel as threadpoolctl sees it: a pthreads OpenBLAS and GNU OpenMP
    vendored in torch.libs/, numpy's own OpenBLAS beside them. OpenBLAS takes OPENBLAS_NUM_THREADS,
    else OMP_NUM_THREADS, else the cores; OpenMP takes OMP_NUM_THREADS, else the cores."""
    omp = int(environ.get("OMP_NUM_THREADS", cores))
    blas = int(environ.get("OPENBLAS_NUM_THREADS", omp))
    return {
        "torch_threads": omp,
        "torch_blas": {"blas_info": "open", "mkl": False, "package_dir": f"{SITE}/torch"},
        "threadpools": [
            _gomp(f"{SITE}/torch.libs/libgomp-947d5fa1.so.1.0.0", omp),
            _openblas(TORCH_OPENBLAS, blas),
            _openblas(NUMPY_OPENBLAS, blas),
        ],
        "allocators": [],
    }


def x86_audit(cores: int = 2) -> dict[str, Any]:
    """A worker of torch's x86 CPU wheel without thread variables (this suite's own 2-core machine):
    torch on MKL, linked in statically so threadpoolctl does not list it, numpy's pthreads OpenBLAS beside it."""
    return {
        "torch_threads": cores,
        "torch_blas": {"blas_info": "mkl", "mkl": True, "package_dir": f"{SITE}/torch"},
        "threadpools": [_gomp(f"{SITE}/torch/lib/libgomp.so.1", cores), _openblas(NUMPY_OPENBLAS, cores)],
        "allocators": [],
    }


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def run(
    host: HostInfo | None = None,
    audit: Mapping | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[Finding]:
    return diagnose(
        host or make_host(),
        good_audit() if audit is None else audit,
        GOOD_ENV if environ is None else environ,
        **kwargs,
    )


def only(findings: list[Finding], code: str) -> Finding:
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, codes(findings)
    return hits[0]


# ---------------------------------------------------------------- baseline


@pytest.mark.parametrize("kind", ["plain", "spr", "pi5", "pi4"])
def test_good_setup_has_no_findings(kind: str) -> None:
    findings = run(
        make_host(kind),
        good_audit(allocators=["jemalloc"], openvino={"INFERENCE_PRECISION_HINT": "f32"}),
        throttle=ThrottleState(0, "vcgencmd get_throttled"),
        thermal=ThermalState(55.0, (2400000,), (2400000,), ("performance",)),
    )
    assert findings == []


def test_worker_audit_missing() -> None:
    finding = only(diagnose(make_host(), None, GOOD_ENV), "worker-audit-missing")
    assert finding.level == "warning"


# ----------------------------------------------------- OpenBLAS vs OpenMP

# Workers start from an allow-list environment: no thread variable unless the profile or recipe sets one.
NO_THREAD_VARIABLES = {"PATH": "/usr/bin", "HF_HUB_OFFLINE": "1"}
PI_SETTINGS = {**NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"}


def thread_recipe_run(recipes: tuple[str, ...], environ: Mapping[str, str]) -> WorkerRun:
    """The worker of thread recipes (they set their thread variables themselves), audited on aarch64."""
    return WorkerRun(recipes, environ, aarch64_audit(environ), takes_profile_threads=False)


def test_torch_pthreads_openblas_next_to_openmp_with_threads_unset_is_an_error() -> None:
    # The Pi report's 32-minute start: the profile's workers start without thread variables, so
    # torch's own OpenBLAS and its OpenMP pool are both as wide as the cores.
    findings = run(
        make_host("pi5"), aarch64_audit(NO_THREAD_VARIABLES), NO_THREAD_VARIABLES, profile="pi5",
        recipe_runs=[thread_recipe_run(("omp4_openblas1",), PI_SETTINGS)],
    )
    finding = only(findings, "openblas-openmp-oversubscription")
    assert finding.level == "error" and exit_code(findings) == 1
    assert TORCH_OPENBLAS in finding.message and NUMPY_OPENBLAS not in finding.message
    assert "52047" in finding.message and "recipe fp32 (no thread variables)" in finding.message
    # A fix that changes what the workers start with: the profile's settings, or the recipe that runs so.
    assert 'set OPENBLAS_NUM_THREADS = "1" and OMP_NUM_THREADS = "4" under [profiles.pi5.env]' in finding.fix
    assert "sdperf/config/profiles.toml" in finding.fix
    assert finding.fix.endswith("--sdperf-recipes omp4_openblas1")


@pytest.mark.parametrize(
    "environ",
    [
        PI_SETTINGS,
        {**NO_THREAD_VARIABLES, "OPENBLAS_NUM_THREADS": "1"},
        {**NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "1"},
    ],
    ids=["pi5-settings", "openblas1", "omp1"],
)
def test_torch_openblas_on_one_thread_is_no_error(environ: dict[str, str]) -> None:
    findings = run(make_host("pi5"), aarch64_audit(environ), environ, profile="pi5")
    assert "openblas-openmp-oversubscription" not in codes(findings)
    assert exit_code(findings) == 0


def test_a_thread_recipe_measuring_the_oversubscription_is_information() -> None:
    # threads_unset reproduces the Pi report's start on purpose: it must not fail the doctor.
    findings = run(
        make_host("pi5"), aarch64_audit(PI_SETTINGS), PI_SETTINGS, profile="pi5",
        recipe_runs=[thread_recipe_run(("threads_unset",), NO_THREAD_VARIABLES)],
    )
    finding = only(findings, "openblas-openmp-oversubscription-measured")
    assert finding.level == "info" and "recipe threads_unset" in finding.message
    assert exit_code(findings) == 0


@pytest.mark.parametrize("report", ["current", "without torch_blas"])
def test_numpy_openblas_next_to_torch_on_mkl_is_no_error(report: str) -> None:
    # x86: torch computes with MKL; numpy's bundled pthreads OpenBLAS is loaded but never called by torch.
    audit = x86_audit(cores=2)
    if report == "without torch_blas":
        del audit["torch_blas"]
    findings = run(make_host("plain", logical=2, physical=2), audit, NO_THREAD_VARIABLES, profile="cpu")
    assert "openblas-openmp-oversubscription" not in codes(findings)
    assert [f.level for f in findings if f.level == "error"] == [] and exit_code(findings) == 0
    info = only(findings, "openblas-outside-torch")
    assert info.level == "info" and NUMPY_OPENBLAS in info.message and "numpy's bundled OpenBLAS" in info.message
    if report == "current":
        assert "torch computes with MKL" in info.message


@pytest.mark.parametrize(
    ("layer", "blas_threads", "omp_threads"),
    [("openmp", 4, 4), ("pthreads", 1, 4), ("pthreads", 4, 1), ("disabled", 4, 4)],
)
def test_openblas_openmp_quiet_when_safe(layer: str, blas_threads: int, omp_threads: int) -> None:
    audit = aarch64_audit(NO_THREAD_VARIABLES)
    audit["threadpools"][0]["num_threads"] = omp_threads
    audit["threadpools"][1].update(threading_layer=layer, num_threads=blas_threads)
    audit["threadpools"].pop()  # numpy's copy
    assert "openblas-openmp-oversubscription" not in codes(run(make_host("pi5"), audit, GOOD_ENV))


def test_torch_blas_tells_torch_own_from_other_packages_copies() -> None:
    assert torch_blas(aarch64_audit(NO_THREAD_VARIABLES)).pool["filepath"] == TORCH_OPENBLAS
    assert torch_blas(x86_audit()).kind == "mkl" and torch_blas(x86_audit()).pool is None
    # A report without torch's folder: the wheel's layout (torch.libs/) still tells.
    older = aarch64_audit(NO_THREAD_VARIABLES)
    del older["torch_blas"]
    assert torch_blas(older).pool["filepath"] == TORCH_OPENBLAS
    # A distribution's torch links the system OpenBLAS, not numpy's.
    system = "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0"
    distro = {"torch_blas": {"blas_info": "open", "package_dir": "/usr/lib/python3/dist-packages/torch"},
              "threadpools": [_openblas(NUMPY_OPENBLAS, 4), _openblas(system, 4)]}
    assert torch_blas(distro).pool["filepath"] == system
    assert torch_blas({"threadpools": [_openblas(NUMPY_OPENBLAS, 4)]}) == torch_blas(None)


# What torch 2.13's aarch64 wheel reported inside tools/emulated_pi5.sh (threads unset): NVPL as
# its BLAS, no OpenBLAS of its own; numpy's and scipy's OpenBLAS and scikit-learn's libgomp beside.
EMULATED_SITE = "/opt/sdperf/.venv/lib/python3.11/site-packages"
TORCH_2_13_AARCH64 = {
    "torch_threads": 2,
    "environment": {},
    "torch_blas": {"blas_info": "nvpl", "mkl": False, "package_dir": f"{EMULATED_SITE}/torch"},
    "threadpools": [
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2,
         "filepath": f"{EMULATED_SITE}/scikit_learn.libs/libgomp-a49a47f9.so.1.0.0"},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2, "filepath": f"{EMULATED_SITE}/torch/lib/libgomp.so.1"},
        _openblas(f"{EMULATED_SITE}/scipy.libs/libscipy_openblas-c5a9b014.so", 2),
        _openblas(f"{EMULATED_SITE}/numpy.libs/libscipy_openblas64_-7220728c.so", 2),
    ],
}


def test_torch_on_nvpl_has_no_openblas_hazard_and_is_named() -> None:
    blas = torch_blas(TORCH_2_13_AARCH64)
    assert blas.kind == "nvpl" and blas.pool is None
    assert describe_torch_blas(blas).startswith("NVIDIA Performance Libraries (its build's BLAS_INFO=nvpl")
    assert "openblas-openmp-oversubscription" not in codes(run(make_host("pi5"), TORCH_2_13_AARCH64, GOOD_ENV))


# torch 2.10.0's aarch64 wheel, PyPI's newest CPU build, as its worker reported it under
# tools/emulated_pi5.sh (threads unset): its own OpenBLAS is the OpenMP build.
TORCH_2_10_AARCH64 = {
    **TORCH_2_13_AARCH64,
    "torch_blas": {"blas_info": "open", "mkl": False, "package_dir": f"{EMULATED_SITE}/torch", "cuda": None},
    "threadpools": [
        *TORCH_2_13_AARCH64["threadpools"],
        {**_openblas(f"{EMULATED_SITE}/torch/lib/libopenblas-24fd393f.so.0", 2), "threading_layer": "openmp"},
    ],
}


def test_torch_on_an_openmp_openblas_has_no_hazard_and_says_which_variable_sizes_it() -> None:
    blas = torch_blas(TORCH_2_10_AARCH64)
    assert blas.kind == "openblas" and blas.pool["filepath"].endswith("torch/lib/libopenblas-24fd393f.so.0")
    assert describe_torch_blas(blas) == (
        f"its own OpenBLAS, built with OpenMP ({EMULATED_SITE}/torch/lib/libopenblas-24fd393f.so.0): it follows "
        "OMP_NUM_THREADS, and OPENBLAS_NUM_THREADS does not reach it"
    )
    found = codes(run(make_host("pi5"), TORCH_2_10_AARCH64, GOOD_ENV))
    assert "openblas-openmp-oversubscription" not in found and "cuda-torch-on-a-pi" not in found


def test_a_cuda_build_of_torch_on_a_pi_is_a_warning_with_the_cpu_index() -> None:
    # PyPI's aarch64 torch 2.13, as its worker reported it under tools/emulated_pi5.sh.
    cuda_build = {**TORCH_2_13_AARCH64, "torch_blas": {**TORCH_2_13_AARCH64["torch_blas"], "cuda": "13.0"}}
    found = {f.code: f for f in run(make_host("pi5"), cuda_build, GOOD_ENV)}
    warning = found["cuda-torch-on-a-pi"]
    assert warning.level == "warning" and "CUDA 13.0; BLAS_INFO=nvpl" in warning.message
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup" in warning.fix
    # The CPU build (no CUDA version) on the Pi, and the CUDA build on a host that is no Pi: nothing said.
    assert "cuda-torch-on-a-pi" not in codes(run(make_host("pi5"), TORCH_2_13_AARCH64, GOOD_ENV))
    assert "cuda-torch-on-a-pi" not in codes(run(make_host("plain"), cuda_build, GOOD_ENV))


# ------------------------------------- one worker per thread setting of the recipes


def cases_of(profile: str, cpus: int = 4) -> list:
    return doctor_cases(load_profiles()[profile], cores=4, cpus=cpus)


def recipes_of(groups: list) -> list[list[str]]:
    return [[case.recipe for case in group] for group in groups]


def test_recipes_with_the_same_thread_setting_share_one_worker() -> None:
    assert recipes_of(group_by_thread_setting(cases_of("cpu"))) == [
        ["fp32", "threads_unset"], ["omp1"], ["omp1_openblas4"], ["omp_cores_openblas1"], ["pin_cores", "xeon_stack"],
    ]
    assert recipes_of(group_by_thread_setting(cases_of("pi5"))) == [
        ["fp32", "omp4_openblas1"], ["threads_unset"], ["omp1"], ["omp1_openblas4"],
    ]


def test_one_audit_per_thread_setting_and_findings_from_those_workers() -> None:
    audited = []

    def fake_audit(case: Any) -> tuple[dict, None]:
        audited.append(case.recipe)
        return aarch64_audit(case.worker_environment()), None

    runs = [run for run, _ in audit_groups(group_by_thread_setting(cases_of("cpu")), fake_audit)]
    assert audited == ["fp32", "omp1", "omp1_openblas4", "omp_cores_openblas1", "pin_cores"]
    assert [r.takes_profile_threads for r in runs] == [True, False, False, False, False]
    # The cpu profile sets no thread variables: on an aarch64 host its control oversubscribes.
    control, *others = runs
    findings = diagnose(make_host("plain", logical=4, physical=4), control.audit, control.environ, profile="cpu",
                        recipe_runs=others, control_recipes=control.recipes)
    error = only(findings, "openblas-openmp-oversubscription")
    assert "recipes fp32, threads_unset (no thread variables)" in error.message
    assert "[profiles.cpu.env]" in error.fix and error.fix.endswith("--sdperf-recipes omp_cores_openblas1")


def test_recipes_that_cannot_run_here_are_not_audited_but_the_control_is() -> None:
    facts = HostFacts(frozenset(), (), 2, lambda soname: None, lambda command: None, lambda dist: None,
                      lambda name: None)
    kept, reasons = runnable_here(cases_of("pi5", cpus=2), facts)
    assert [case.recipe for case in kept] == ["fp32", "threads_unset", "omp1"]
    assert [reason.split()[1] for reason in reasons] == ["omp1_openblas4", "omp4_openblas1"]
    kept, _ = runnable_here(cases_of("cuda_lowvram"), facts)  # no GPU: the audit needs none
    assert [case.recipe for case in kept] == ["cuda_fp16"]


def test_the_lines_above_the_findings_say_what_each_worker_ran_with() -> None:
    control = WorkerRun(("fp32", "omp4_openblas1"), PI_SETTINGS, aarch64_audit(PI_SETTINGS))
    unset = thread_recipe_run(("threads_unset",), NO_THREAD_VARIABLES)
    lines = describe_runs([(control, None), (unset, None)], ["recipe omp1_openblas4 sets ..."])
    assert lines == [
        "worker: torch 4 threads; pools: openblas 1, openblas 1, openmp 4; allocators: libc",
        f"torch computes with its own OpenBLAS ({TORCH_OPENBLAS}, pthreads)",
        "thread recipes, one worker per thread setting:",
        "  threads_unset (no thread variables): torch 4 threads; pools: openblas 4, openblas 4, openmp 4",
        "not audited: recipe omp1_openblas4 sets ...",
    ]


# ------------------------------------------------ fixes the workers can see


@pytest.mark.parametrize(
    ("kind", "audit", "environ", "profile"),
    [
        ("pi5", aarch64_audit(NO_THREAD_VARIABLES), NO_THREAD_VARIABLES, "pi5"),
        ("plain", x86_audit(), NO_THREAD_VARIABLES, "cpu"),
        ("plain", good_audit(torch_threads=2), {"OMP_NUM_THREADS": "x", "MKL_NUM_THREADS": "16"}, None),
        ("plain", good_audit(torch_threads=2), {"OMP_NUM_THREADS": "16"}, "pi5"),
        ("plain", good_audit(torch_threads=2), GOOD_ENV, "cpu"),
    ],
    ids=["hazard", "x86", "invalid", "emulated", "not-honoured"],
)
def test_no_fix_exports_a_variable_the_workers_never_see(kind: str, audit: dict, environ: dict, profile: str) -> None:
    findings = run(make_host(kind), audit, environ, profile=profile)
    assert findings
    for finding in findings:
        assert "export" not in finding.fix and not finding.fix.startswith("run with"), finding


# --------------------------------------------------------- thread variables


def test_omp_num_threads_unset_in_the_profile_workers() -> None:
    finding = only(run(environ={}, profile="cpu"), "omp-num-threads-unset")
    assert finding.level == "warning"
    assert "the cpu profile sets no OMP_NUM_THREADS" in finding.message and "recipe fp32" in finding.message
    assert finding.fix.startswith('add OMP_NUM_THREADS = "4" under [profiles.cpu.env] in sdperf/config/profiles.toml')


def test_omp_num_threads_unset_names_the_thread_recipes_that_set_it() -> None:
    setter = WorkerRun(("omp_cores_openblas1",), {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"},
                       good_audit(), takes_profile_threads=False)
    finding = only(run(environ={}, profile="cpu", recipe_runs=[setter]), "omp-num-threads-unset")
    assert finding.fix.endswith("--sdperf-recipes omp_cores_openblas1")


def test_a_recipe_unsetting_the_thread_variables_on_purpose_is_quiet() -> None:
    unset = WorkerRun(("threads_unset",), {}, good_audit(), takes_profile_threads=False)
    assert run(recipe_runs=[unset]) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("OMP_NUM_THREADS", "0"), ("OMP_NUM_THREADS", ""), ("OPENBLAS_NUM_THREADS", "four"),
     ("MKL_NUM_THREADS", "-2"), ("MKL_NUM_THREADS", "2,1")],
)
def test_thread_variable_invalid(name: str, value: str) -> None:
    finding = only(run(environ={**GOOD_ENV, name: value}, profile="cpu"), "thread-variable-invalid")
    assert finding.level == "error"
    assert f"{name}={value!r}" in finding.message
    assert finding.fix == f'set {name} = "4" under [profiles.cpu.env] in sdperf/config/profiles.toml'


def test_invalid_value_of_a_thread_recipe_is_fixed_in_the_recipe() -> None:
    broken = WorkerRun(("omp1",), {"OMP_NUM_THREADS": "one"}, good_audit(), takes_profile_threads=False)
    finding = only(run(recipe_runs=[broken]), "thread-variable-invalid")
    assert "recipe omp1" in finding.message
    assert finding.fix.endswith("in the env of recipe omp1 in sdperf/config/recipes.py")


def test_thread_variable_above_core_count() -> None:
    finding = only(run(environ={"OMP_NUM_THREADS": "16"}), "thread-variable-oversubscribed")
    assert finding.level == "warning"
    assert "OMP_NUM_THREADS=16" in finding.message and "8 logical cores" in finding.message
    assert finding.fix.startswith('set OMP_NUM_THREADS = "4" under [profiles.')


def test_emulated_profile_counts_above_the_cores_need_no_change() -> None:
    # pi5 emulated on a 2-core machine: its 4 threads describe the board; torch caps them and says so.
    host = make_host("plain", logical=2, physical=2)
    findings = run(host, good_audit(torch_threads=2), {"OMP_NUM_THREADS": "4"}, profile="pi5")
    assert codes(findings) == ["thread-variable-oversubscribed", "thread-variable-not-honoured"]
    assert all(f.fix.startswith("nothing to change for this emulation") for f in findings)


@pytest.mark.parametrize(
    "env",
    [{"OMP_NUM_THREADS": "8"}, {"OMP_NUM_THREADS": "4,2"},
     {"OMP_NUM_THREADS": " 4 ", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "8"}],
)
def test_thread_variables_quiet_when_valid(env: dict[str, str]) -> None:
    torch_threads = int(env["OMP_NUM_THREADS"].split(",")[0])
    assert run(audit=good_audit(torch_threads=torch_threads), environ=env) == []


def test_thread_variable_not_honoured_by_torch() -> None:
    # torch caps its default at the core count: OMP_NUM_THREADS=4 ran 2 threads on a 2-core host.
    finding = only(run(audit=good_audit(torch_threads=2)), "thread-variable-not-honoured")
    assert finding.level == "warning"
    assert "OMP_NUM_THREADS=4" in finding.message and "runs 2 intra-op threads" in finding.message
    assert 'OMP_NUM_THREADS = "2" under [profiles.' in finding.fix


def test_thread_variable_honoured_or_unset_is_quiet() -> None:
    assert "thread-variable-not-honoured" not in codes(run(audit=good_audit(torch_threads=4)))
    assert "thread-variable-not-honoured" not in codes(run(audit=good_audit(torch_threads=2), environ={}))


def test_fix_uses_logical_cores_when_physical_unknown() -> None:
    finding = only(run(make_host(logical=6, physical=None), environ={}), "omp-num-threads-unset")
    assert 'OMP_NUM_THREADS = "6"' in finding.fix


# ------------------------------------------------------------ Pi throttling


def test_pi5_under_voltage_and_throttled_now() -> None:
    findings = run(make_host("pi5"), throttle=ThrottleState(0x50005, "vcgencmd get_throttled"))
    assert codes(findings) == ["pi-under-voltage", "pi-throttled"]
    assert all(f.level == "error" for f in findings)
    assert "0x50005" in findings[0].message
    assert "5 V 5 A" in findings[0].fix
    assert "Active Cooler" in findings[1].fix


def test_pi4_since_boot_is_a_warning_with_3a_supply() -> None:
    findings = run(make_host("pi4"), throttle=ThrottleState(0x50000, "sysfs"))
    assert codes(findings) == ["pi-under-voltage-since-boot", "pi-throttled-since-boot"]
    assert all(f.level == "warning" for f in findings)
    assert "5 V 3 A" in findings[0].fix and "reboot" in findings[0].fix


def test_soft_temp_limit_now() -> None:
    finding = only(run(make_host("pi5"), throttle=ThrottleState(0x8, "s")), "pi-throttled")
    assert "soft temperature limit" in finding.message


@pytest.mark.parametrize("throttle", [None, ThrottleState(0, "s"), ThrottleState(None, "s"),
                                      ThrottleState(0xFFF0FFF0, "s")])
def test_pi_throttle_quiet(throttle: ThrottleState | None) -> None:
    assert run(make_host("pi5"), throttle=throttle) == []


def test_pi5_hot() -> None:
    hot = ThermalState(81.5, (1500000,), (2400000,), ("performance",))
    finding = only(run(make_host("pi5"), thermal=hot), "pi-hot")
    assert finding.level == "warning" and "81.5 C" in finding.message


def test_not_hot_below_80_or_not_a_pi() -> None:
    warm = ThermalState(79.9, (), (), ())
    assert run(make_host("pi5"), thermal=warm) == []
    assert run(make_host("plain"), thermal=ThermalState(95.0, (), (), ())) == []


# ---------------------------------------------------------------- jemalloc


def test_jemalloc_missing_on_sapphire_rapids() -> None:
    finding = only(run(make_host("spr"), libraries={"jemalloc": None}), "jemalloc-missing")
    assert finding.level == "warning"
    assert "apt-get install libjemalloc2" in finding.fix
    assert "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2" in finding.fix


def test_jemalloc_missing_when_sapphire_rapids_is_requested() -> None:
    assert "jemalloc-missing" in codes(run(make_host("plain"), profile="sapphire_rapids"))


@pytest.mark.parametrize(
    ("host", "audit", "libraries", "profile"),
    [
        ("spr", good_audit(allocators=["jemalloc"]), {}, None),
        ("spr", good_audit(), {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, None),
        ("plain", good_audit(), {"jemalloc": None}, None),
        ("plain", good_audit(), {"jemalloc": None}, "cpu"),
    ],
)
def test_jemalloc_quiet(host: str, audit: dict, libraries: dict, profile: str | None) -> None:
    findings = run(make_host(host), audit, libraries=libraries, profile=profile)
    assert "jemalloc-missing" not in codes(findings)


# ---------------------------------------------------------------- OpenVINO


@pytest.mark.parametrize("hint", ["bf16", "f16"])
def test_openvino_reduced_precision(hint: str) -> None:
    audit = good_audit(openvino={"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": "1"})
    finding = only(run(audit=audit), "openvino-reduced-precision")
    assert finding.level == "warning" and repr(hint) in finding.message
    assert finding.fix == 'pass ov_config={"INFERENCE_PRECISION_HINT": "f32"}'


@pytest.mark.parametrize(
    "openvino", [{"INFERENCE_PRECISION_HINT": "f32"}, {"NUM_STREAMS": "1"}, None]
)
def test_openvino_quiet(openvino: dict | None) -> None:
    audit = good_audit() if openvino is None else good_audit(openvino=openvino)
    assert run(audit=audit) == []


# ---------------------------------------------------------------- governor


def test_governor_not_performance() -> None:
    thermal = ThermalState(50.0, (), (), ("performance", "powersave", "schedutil"))
    finding = only(run(thermal=thermal), "cpu-governor-not-performance")
    assert finding.level == "info"
    assert "powersave, schedutil" in finding.message
    assert "cpupower frequency-set -g performance" in finding.fix


@pytest.mark.parametrize("thermal", [None, ThermalState(None, (), (), ()),
                                     ThermalState(None, (), (), ("performance",) * 4)])
def test_governor_quiet(thermal: ThermalState | None) -> None:
    assert run(thermal=thermal) == []


# ------------------------------------------------------------- and the rest


def test_findings_sorted_by_level() -> None:
    audit = good_audit(openvino={"INFERENCE_PRECISION_HINT": "bf16"})
    findings = run(
        environ={"OMP_NUM_THREADS": "x"},
        audit=audit,
        thermal=ThermalState(None, (), (), ("ondemand",)),
    )
    assert [f.level for f in findings] == ["error", "warning", "info"]


def test_checks_are_pluggable() -> None:
    def always(ctx: Any) -> list[Finding]:
        return [Finding("info", "always", "m", "f")]

    assert codes(diagnose(make_host(), None, {}, checks=[always])) == ["always"]
    assert len(CHECKS) == len(set(CHECKS)) >= 7


def test_finding_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="'fatal' is not one of error, warning, info"):
        Finding("fatal", "x", "m", "f")
    assert LEVELS == ("error", "warning", "info")


def test_format_findings() -> None:
    findings = [
        Finding("error", "pi-under-voltage", "the Pi is under-voltage now", "use a 5 V 5 A supply"),
        Finding(
            "warning", "omp-num-threads-unset", "OMP_NUM_THREADS is not set",
            'add OMP_NUM_THREADS = "4" under [profiles.cpu.env]',
        ),
    ]
    assert format_findings(findings) == (
        "error [pi-under-voltage]: the Pi is under-voltage now\n"
        "  fix: use a 5 V 5 A supply\n"
        "\n"
        "warning [omp-num-threads-unset]: OMP_NUM_THREADS is not set\n"
        '  fix: add OMP_NUM_THREADS = "4" under [profiles.cpu.env]'
    )
    assert format_findings([]) == "no problems found"

"""Findings that ruin benchmark numbers, each with the fix.

Pure functions over data the caller gathered (host detection, the workers'
self-reports, the environments they started with), so every check is testable
with plain dicts. A check is a function in `CHECKS`; adding one is one entry.

Workers take their thread variables from the profile and the recipe (an
allow-list environment, `sdperf.execution.cases`), never from the shell that
runs sdperf, so findings are about those environments and fixes change them
(profiles.toml, a recipe), never "export" in a shell the workers ignore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sdperf.config.recipes import FP32_HINTS, REGISTRY, THREAD_VARIABLES
from sdperf.host.detection import HostInfo
from sdperf.host.devices import TRIPLETS
from sdperf.host.pi import PI_THROTTLE_SOFT_C, ThrottleState
from sdperf.host.sensors import ThermalState

LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem: `level` is error/warning/info, `code` a stable kebab-case id."""

    level: str
    code: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(
                f"Finding {self.code!r}: level {self.level!r} is not one of {', '.join(LEVELS)}; "
                "use one of those"
            )

    def to_json(self) -> dict:
        return {"level": self.level, "code": self.code, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class WorkerRun:
    """One audited worker: the recipes that start with its thread variables, the environment it
    started with and its self-report (None when it could not start)."""

    recipes: tuple[str, ...]
    environ: Mapping[str, str]
    audit: Mapping | None
    # True when some of `recipes` take the profile's thread settings (the control does); False when
    # every one sets its own on purpose (threads_unset measures the unset case, omp1 one thread).
    takes_profile_threads: bool = True

    @property
    def names(self) -> str:
        return f"{'recipe' if len(self.recipes) == 1 else 'recipes'} {', '.join(self.recipes)}"

    @property
    def thread_setting(self) -> str:
        """Its thread variables as text: "OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=1"."""
        pairs = [f"{name}={self.environ[name]}" for name in THREAD_VARIABLES if name in self.environ]
        return " ".join(pairs) or "no thread variables"


@dataclass(frozen=True)
class Context:
    """Everything a check may look at. `worker_audit` and `environ` are the control recipe's worker;
    `runs` has it first, then one worker per other thread setting of the profile's recipes."""

    host: HostInfo
    worker_audit: Mapping | None
    environ: Mapping[str, str]
    throttle: ThrottleState | None = None
    profile: str | None = None
    libraries: Mapping[str, str | None] = field(default_factory=dict)
    thermal: ThermalState | None = None
    runs: tuple[WorkerRun, ...] = ()

    @property
    def thread_count(self) -> str:
        """Physical cores (else logical) as text, for fixes such as OMP_NUM_THREADS = "4"."""
        cores = self.host.cpu.physical_cores or self.host.cpu.logical_cores
        return str(cores) if cores else "<physical cores>"

    @property
    def pi_board(self) -> str | None:
        return self.host.pi.board if self.host.pi is not None else None

    @property
    def emulated(self) -> bool:
        """A requested profile this host is not (pi5 on a Xeon): its thread counts describe another board."""
        return self.profile is not None and self.profile not in self.host.matches

    @property
    def profile_settings(self) -> str:
        """Where the profile's thread variables live: what every worker of the profile starts with."""
        return f"[profiles.{self.profile or '<profile>'}.env] in sdperf/config/profiles.toml"

    def targets(self, profile: str) -> bool:
        """True when `profile` matched the host or was requested."""
        return self.profile == profile or profile in self.host.matches


Check = Callable[[Context], Iterable[Finding]]


# -------------------------------------------------------------------- checks


def _pools(audit: Mapping | None) -> list[Mapping]:
    pools = (audit or {}).get("threadpools") or []
    return [p for p in pools if isinstance(p, Mapping)]


def _threads(pool: Mapping) -> int:
    try:
        return int(pool.get("num_threads") or 0)
    except (TypeError, ValueError):
        return 0


def _path(pool: Mapping) -> str:
    return str(pool.get("filepath") or "?")


def check_worker_audit(ctx: Context) -> Iterator[Finding]:
    """Say when the worker checks could not run at all."""
    if ctx.worker_audit is None:
        yield Finding(
            "warning",
            "worker-audit-missing",
            "the benchmark worker did not report its thread pools, allocators or OpenVINO "
            "settings (it could not start), so those checks were skipped",
            "fix the worker start-up error reported above, then run the doctor again",
        )
    for run in ctx.runs[1:]:
        if run.audit is None:
            yield Finding(
                "warning",
                "worker-audit-missing",
                f"the worker of {run.names} ({run.thread_setting}) did not report its thread pools "
                "(it could not start), so their thread checks were skipped",
                "fix the worker start-up error reported above, then run the doctor again",
            )


# ---------------------------------------------- which BLAS torch computes with


@dataclass(frozen=True)
class TorchBlas:
    """The BLAS torch itself calls: `kind` is "mkl", "openblas" or what its build names, `pool`
    its threadpoolctl entry when threadpoolctl sees it (an OpenBLAS; MKL is linked in statically)."""

    kind: str
    pool: Mapping | None = None


def _torch_folders(audit: Mapping | None) -> tuple[str, ...]:
    """torch's package folder and the one its wheel vendors libraries into (torch.libs)."""
    package = str(((audit or {}).get("torch_blas") or {}).get("package_dir") or "").rstrip("/")
    return (package, f"{package}.libs") if package else ()


def _inside_torch(path: str, torch_folders: tuple[str, ...]) -> bool:
    if torch_folders:
        return any(path.startswith(f"{folder}/") for folder in torch_folders)
    # A report without torch's folder: the site-packages layout of a wheel.
    return bool({"torch", "torch.libs"} & set(PurePosixPath(path).parts))


def _python_package_of(path: str) -> str | None:
    """The package a library was bundled with ("numpy" for site-packages/numpy.libs/x.so), or None."""
    parts = PurePosixPath(path).parts
    for index, part in enumerate(parts[:-2]):
        if part in ("site-packages", "dist-packages"):
            return parts[index + 1].removesuffix(".libs")
    return None


def torch_blas(audit: Mapping | None) -> TorchBlas:
    """Which BLAS torch itself calls, from the worker's report.

    x86 wheels use MKL (BLAS_INFO=mkl); older aarch64 wheels an OpenBLAS inside torch's own
    folders, torch 2.13's aarch64 wheel NVPL (BLAS_INFO=nvpl).
    numpy and scipy bundle their own OpenBLAS, which torch never calls.
    """
    openblas = [p for p in _pools(audit) if p.get("internal_api") == "openblas"]
    folders = _torch_folders(audit)
    own = [p for p in openblas if _inside_torch(_path(p), folders)]
    if own:
        return TorchBlas("openblas", own[0])
    reported = (audit or {}).get("torch_blas") or {}
    build = str(reported.get("blas_info") or "").lower()
    if build == "mkl" or (not build and reported.get("mkl")):
        return TorchBlas("mkl")
    if build in ("open", "openblas"):
        # A distribution's torch links the system OpenBLAS (/usr/lib/...), not a package's copy.
        system = [p for p in openblas if _python_package_of(_path(p)) is None]
        return TorchBlas("openblas", system[0] if system else None)
    return TorchBlas(build or "unknown")


def describe_torch_blas(blas: TorchBlas) -> str:
    if blas.kind == "mkl":
        return "MKL (its build's BLAS_INFO=mkl)"
    if blas.kind == "openblas":
        if not blas.pool:
            return "an OpenBLAS threadpoolctl does not see"
        if blas.pool.get("threading_layer") == "openmp":
            # torch 2.10's aarch64 wheel (seen under tools/emulated_pi5.sh).
            return (f"its own OpenBLAS, built with OpenMP ({_path(blas.pool)}): it follows OMP_NUM_THREADS, "
                    "and OPENBLAS_NUM_THREADS does not reach it")
        layer = blas.pool.get("threading_layer") or "threading layer not reported"
        return f"its own OpenBLAS ({_path(blas.pool)}, {layer})"
    if blas.kind == "nvpl":
        # torch 2.13's aarch64 wheel (seen under tools/emulated_pi5.sh): no OpenBLAS of its own.
        return ("NVIDIA Performance Libraries (its build's BLAS_INFO=nvpl: OpenMP-threaded, so it follows "
                "OMP_NUM_THREADS; threadpoolctl lists no pool of it)")
    return "a BLAS the worker's report does not name" if blas.kind == "unknown" else f"BLAS_INFO={blas.kind}"


def _threaded_pthreads_openblas(pool: Mapping) -> bool:
    return pool.get("internal_api") == "openblas" and pool.get("threading_layer") == "pthreads" and _threads(pool) > 1


def _threaded_openmp(audit: Mapping | None) -> Mapping | None:
    """An OpenMP pool of more than one thread: with one, nothing calls OpenBLAS concurrently."""
    return next((p for p in _pools(audit) if p.get("user_api") == "openmp" and _threads(p) > 1), None)


def _changes_threads_only(name: str) -> bool:
    """A recipe that differs from the control in thread settings (and pinning) alone: a fair one to
    time instead of the control; xeon_stack sets OMP_NUM_THREADS too, but also bf16 and a scheduler."""
    recipe = REGISTRY.get(name)
    return recipe is not None and not (
        recipe.transforms or recipe.preload or recipe.loader != "diffusers" or recipe.load_dtype
        or recipe.needs.python_env
    )


def _recipes_where(ctx: Context, ran_well: Callable[[WorkerRun], bool]) -> list[str]:
    """Thread-only recipes of the audited workers that ran well, to name in a fix."""
    return [name for run in ctx.runs if ran_well(run) for name in run.recipes if _changes_threads_only(name)]


def _runs_openblas_single(run: WorkerRun) -> bool:
    """torch's OpenBLAS on one thread next to a threaded OpenMP pool: the Pi report's 14 min."""
    pool = torch_blas(run.audit).pool
    return pool is not None and _threads(pool) == 1 and _threaded_openmp(run.audit) is not None


def _oversubscription_fix(ctx: Context, run: WorkerRun) -> str:
    wanted = 'OPENBLAS_NUM_THREADS = "1"'
    if "OMP_NUM_THREADS" not in run.environ:
        wanted += f' and OMP_NUM_THREADS = "{ctx.thread_count}"'
    fix = f"set {wanted} under {ctx.profile_settings} (the workers take their thread variables from there)"
    safe = _recipes_where(ctx, _runs_openblas_single)
    if safe:
        fix += f", or time what already runs so: --sdperf-recipes {','.join(safe)}"
    return fix


def check_blas_openmp(ctx: Context) -> Iterator[Finding]:
    """torch's pthreads OpenBLAS next to an OpenMP pool: both spin up a pool per core (PyTorch #52047).

    Only torch's own BLAS counts: the benchmarks' hot path is torch. A recipe that sets its thread
    variables to show this (threads_unset) is measuring it on purpose: information, not an error.
    """
    for run in ctx.runs:
        blas, omp = torch_blas(run.audit).pool, _threaded_openmp(run.audit)
        if blas is None or omp is None or not _threaded_pthreads_openblas(blas):
            continue
        pools = (
            f"torch's OpenBLAS is built with pthreads ({_threads(blas)} threads, {_path(blas)}) and runs next to "
            f"an OpenMP pool ({omp.get('internal_api', 'openmp')}, {_threads(omp)} threads, {_path(omp)}) "
            f"in the workers of {run.names} ({run.thread_setting})"
        )
        if run.takes_profile_threads:
            yield Finding(
                "error",
                "openblas-openmp-oversubscription",
                f"{pools}: the two pools oversubscribe the cores and OpenBLAS may spin or hang ('Detect OpenMP "
                "Loop and this application may hang', PyTorch issue 52047); on a Pi 5 this made one image take "
                "32 min instead of 14 min",
                _oversubscription_fix(ctx, run),
            )
        else:
            yield Finding(
                "info",
                "openblas-openmp-oversubscription-measured",
                f"{pools}: a thread setting chosen on purpose, to measure the oversubscription (the Pi "
                "report's 32 min instead of 14 min), so expect those timings to be slow",
                "nothing to fix; leave them out with --sdperf-recipes when you do not want to time them",
            )


def check_blas_outside_torch(ctx: Context) -> Iterator[Finding]:
    """Another package's pthreads OpenBLAS (numpy's) next to OpenMP: said, never an error, since
    torch does not call it (the x86 wheel computes with MKL)."""
    audit = ctx.worker_audit
    torch = torch_blas(audit)
    others = [p for p in _pools(audit) if p is not torch.pool and _threaded_pthreads_openblas(p)]
    if not others or _threaded_openmp(audit) is None:
        return
    path = _path(others[0])
    package = _python_package_of(path)
    owner = f"{package}'s bundled OpenBLAS" if package else "an OpenBLAS"
    yield Finding(
        "info",
        "openblas-outside-torch",
        f"{owner} (pthreads, {_threads(others[0])} threads, {path}) is loaded next to torch's OpenMP pool, but "
        f"torch computes with {describe_torch_blas(torch)}, so the benchmarks' hot path does not call it",
        "nothing to change for the benchmarks; it matters only to numpy or scipy linear algebra in timed code",
    )


def check_cuda_torch_on_a_pi(ctx: Context) -> Iterator[Finding]:
    """A CUDA build of torch on a Raspberry Pi: pip takes it from PyPI, where torch 2.13's aarch64
    wheel is the CUDA build (seen under tools/emulated_pi5.sh: 2.9 GB of nvidia-* packages and NVPL
    as its BLAS). The Pi profiles' thread recipes are about the CPU build's OpenBLAS."""
    reported = (ctx.worker_audit or {}).get("torch_blas") or {}
    cuda = reported.get("cuda")
    if not cuda or not (ctx.targets("pi4") or ctx.targets("pi5")) or ctx.emulated:
        return
    yield Finding(
        "warning",
        "cuda-torch-on-a-pi",
        f"torch here is a CUDA build (CUDA {cuda}; BLAS_INFO={reported.get('blas_info')}) on a board without "
        "a CUDA GPU: PyPI's aarch64 wheel is that build, with gigabytes of nvidia-* packages, and it computes "
        "with another BLAS than the CPU build the Pi profiles' thread recipes are about",
        "install the CPU build from PyTorch's CPU index: rm -rf .venv && "
        "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup (on a runner, put that variable "
        "in its .env)",
    )


# ---------------------------------------------------------- thread variables


def _thread_value(name: str, value: str) -> int | None:
    """First count in the variable, or None when it is not a positive integer."""
    # OpenMP allows a nesting list ("4,2"); the others take one integer.
    items = value.split(",") if name == "OMP_NUM_THREADS" else [value]
    counts = []
    for item in items:
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            return None
        counts.append(int(item))
    return counts[0]


def _where_set(ctx: Context, run: WorkerRun) -> str:
    """Where a worker's thread variables come from: the profile's settings, or its recipes' own."""
    if run.takes_profile_threads:
        return f"under {ctx.profile_settings}"
    return f"in the env of {run.names} in sdperf/config/recipes.py"


def _emulation_note(ctx: Context) -> str:
    return (
        f"nothing to change for this emulation: the {ctx.profile} profile's counts describe its own board, "
        "torch caps them at this host's cores and the cases' results say so; run on that hardware for its numbers"
    )


def _omp_unset(ctx: Context, run: WorkerRun) -> Iterator[Finding]:
    """The profile leaves OMP_NUM_THREADS out of its workers (recipes that unset it mean to)."""
    if not run.takes_profile_threads or "OMP_NUM_THREADS" in run.environ:
        return
    picked = (run.audit or {}).get("torch_threads")
    chose = f" (there it chose {picked})" if isinstance(picked, int) else ""
    fix = (
        f'add OMP_NUM_THREADS = "{ctx.thread_count}" under {ctx.profile_settings} '
        "(the workers take their thread variables from there)"
    )
    setters = _recipes_where(ctx, lambda other: other.environ.get("OMP_NUM_THREADS") == ctx.thread_count)
    if setters:
        fix += f", or time what sets it: --sdperf-recipes {','.join(setters)}"
    yield Finding(
        "warning",
        "omp-num-threads-unset",
        f"the {ctx.profile or 'selected'} profile sets no OMP_NUM_THREADS, so the workers of {run.names} start "
        f"without it and torch picks its own thread count{chose}: another host, or this one with other CPUs, "
        "picks another and runs are not comparable",
        fix,
    )


def _thread_values(ctx: Context, run: WorkerRun) -> Iterator[Finding]:
    """Each thread variable the worker starts with: a positive integer, not above the logical cores."""
    logical = ctx.host.cpu.logical_cores
    for name in THREAD_VARIABLES:
        if name not in run.environ:
            continue
        value = run.environ[name]
        count = _thread_value(name, value)
        if count is None:
            yield Finding(
                "error",
                "thread-variable-invalid",
                f"{name}={value!r} in the workers of {run.names} is not a positive integer; "
                "libraries ignore it or fail",
                f'set {name} = "{ctx.thread_count}" {_where_set(ctx, run)}',
            )
        elif logical and count > logical:
            yield Finding(
                "warning",
                "thread-variable-oversubscribed",
                f"{name}={count} in the workers of {run.names} is more than the {logical} logical cores of this "
                "host, so threads fight for cores",
                _emulation_note(ctx) if ctx.emulated and run.takes_profile_threads
                else f'set {name} = "{ctx.thread_count}" {_where_set(ctx, run)}',
            )


def check_thread_variables(ctx: Context) -> Iterator[Finding]:
    """OMP/OpenBLAS/MKL thread counts of every audited worker: set, valid, and not above the core count."""
    for run in ctx.runs:
        yield from _omp_unset(ctx, run)
        yield from _thread_values(ctx, run)


def check_threads_honoured(ctx: Context) -> Iterator[Finding]:
    """OMP_NUM_THREADS asked for N but the worker's torch runs another count.

    torch caps its default at the core count (torch 2.13 turns OMP_NUM_THREADS=4 into 2
    threads on a 2-core host), so a setting copied from another machine quietly changes.
    """
    for run in ctx.runs:
        value = run.environ.get("OMP_NUM_THREADS")
        wanted = _thread_value("OMP_NUM_THREADS", value) if value else None
        actual = (run.audit or {}).get("torch_threads")
        if wanted is None or not isinstance(actual, int) or actual == wanted:
            continue
        yield Finding(
            "warning",
            "thread-variable-not-honoured",
            f"OMP_NUM_THREADS={value} but torch in the worker runs {actual} intra-op threads ({run.names}), "
            "so results are not those of the setting asked for",
            _emulation_note(ctx) if ctx.emulated and run.takes_profile_threads
            else f'set OMP_NUM_THREADS = "{actual}" {_where_set(ctx, run)} to ask for what runs, '
            f"or run on a host with {wanted} cores",
        )


def _supply(board: str | None) -> str:
    return {
        "pi5": "the official 5 V 5 A (27 W) USB-C supply",
        "pi4": "the official 5 V 3 A (15 W) USB-C supply",
    }.get(board or "", "the official Raspberry Pi power supply for this board")


def _cooling(board: str | None) -> str:
    return "an Active Cooler or fan" if board == "pi5" else "a heatsink and fan"


def check_pi_throttle(ctx: Context) -> Iterator[Finding]:
    """Under-voltage and throttling from the Pi firmware bits."""
    t = ctx.throttle
    if t is None or t.raw is None:
        return
    board = ctx.pi_board
    bits = f"{t.source} = {t.raw:#x}"
    reboot = "; the since-boot flags clear only on reboot"
    if t.under_voltage_now:
        yield Finding(
            "error",
            "pi-under-voltage",
            f"the Raspberry Pi is under-voltage now ({bits}), so the firmware slows the CPU",
            f"use {_supply(board)} and a short, thick cable",
        )
    elif t.under_voltage_since_boot:
        yield Finding(
            "warning",
            "pi-under-voltage-since-boot",
            f"the Raspberry Pi has been under-voltage since boot ({bits}); "
            "runs during that time were slowed",
            f"use {_supply(board)}, then reboot{reboot}",
        )
    now = [
        text for hit, text in (
            (t.freq_capped_now, "Arm frequency capped"),
            (t.throttled_now, "throttled"),
            (t.soft_temp_limit_now, "soft temperature limit active"),
        ) if hit
    ]
    since = [
        text for hit, text in (
            (t.freq_capped_since_boot, "Arm frequency capped"),
            (t.throttled_since_boot, "throttled"),
            (t.soft_temp_limit_since_boot, "soft temperature limit reached"),
        ) if hit
    ]
    if now:
        yield Finding(
            "error",
            "pi-throttled",
            f"the Raspberry Pi is {', '.join(now)} now ({bits}); timings are not comparable",
            f"fit {_cooling(board)} and use {_supply(board)}, then let it cool before running",
        )
    elif since:
        yield Finding(
            "warning",
            "pi-throttled-since-boot",
            f"the Raspberry Pi was {', '.join(since)} since boot ({bits}); "
            "earlier runs may have been slowed",
            f"fit {_cooling(board)} and use {_supply(board)}, then reboot{reboot}",
        )


def check_pi_temperature(ctx: Context) -> Iterator[Finding]:
    """A Pi at 80 C or more is about to throttle (hard limit 85 C)."""
    temp = ctx.thermal.temperature_c if ctx.thermal is not None else None
    if ctx.host.pi is None or temp is None or temp < PI_THROTTLE_SOFT_C:
        return
    yield Finding(
        "warning",
        "pi-hot",
        f"the Raspberry Pi CPU is at {temp:.1f} C; the firmware throttles from "
        f"{PI_THROTTLE_SOFT_C:.0f} C (hard at 85 C), so timings will drift",
        f"fit {_cooling(ctx.pi_board)} and let the board cool below 70 C before running",
    )


def check_jemalloc(ctx: Context) -> Iterator[Finding]:
    """Sapphire Rapids numbers assume jemalloc; glibc malloc adds page-fault noise."""
    if not ctx.targets("sapphire_rapids"):
        return
    mapped = [str(a).lower() for a in (ctx.worker_audit or {}).get("allocators") or []]
    if any("jemalloc" in a for a in mapped) or ctx.libraries.get("jemalloc"):
        return
    triplet = TRIPLETS.get(ctx.host.cpu.architecture, "<triplet>")
    yield Finding(
        "warning",
        "jemalloc-missing",
        "jemalloc is neither loaded in the worker nor installed (no libjemalloc.so.2 found), "
        "so the sapphire_rapids profile runs on glibc malloc and its numbers are not comparable",
        "apt-get install libjemalloc2, then run with the jemalloc recipe "
        f"(LD_PRELOAD=/usr/lib/{triplet}/libjemalloc.so.2)",
    )


def check_openvino_precision(ctx: Context) -> Iterator[Finding]:
    """OpenVINO may silently run bf16 (AMX) or f16 (Arm) unless told f32."""
    config = (ctx.worker_audit or {}).get("openvino")
    if not isinstance(config, Mapping) or "INFERENCE_PRECISION_HINT" not in config:
        return
    hint = str(config["INFERENCE_PRECISION_HINT"])
    if hint.strip().lower() in FP32_HINTS:
        return
    yield Finding(
        "warning",
        "openvino-reduced-precision",
        f"OpenVINO INFERENCE_PRECISION_HINT is {hint!r}: OpenVINO may run bf16 on AMX or "
        "f16 on Arm, so results are not fp32 and not comparable with fp32 runs",
        'pass ov_config={"INFERENCE_PRECISION_HINT": "f32"}',
    )


def check_governor(ctx: Context) -> Iterator[Finding]:
    """A non-performance governor ramps clocks during the run and adds noise."""
    governors = ctx.thermal.governors if ctx.thermal is not None else ()
    others = sorted({g for g in governors if g != "performance"})
    if not others:
        return
    yield Finding(
        "info",
        "cpu-governor-not-performance",
        f"CPU frequency governor is {', '.join(others)} rather than performance, "
        "so clocks ramp up during the run and timings vary",
        "sudo cpupower frequency-set -g performance (or: echo performance | sudo tee "
        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
    )


CHECKS: list[Check] = [
    check_worker_audit,
    check_blas_openmp,
    check_blas_outside_torch,
    check_cuda_torch_on_a_pi,
    check_thread_variables,
    check_threads_honoured,
    check_pi_throttle,
    check_pi_temperature,
    check_jemalloc,
    check_openvino_precision,
    check_governor,
]


# ---------------------------------------------------------------- entry points


def diagnose(
    host: HostInfo,
    worker_audit: Mapping | None,
    environ: Mapping[str, str],
    throttle: ThrottleState | None = None,
    profile: str | None = None,
    libraries: Mapping[str, str | None] | None = None,
    thermal: ThermalState | None = None,
    checks: Sequence[Check] | None = None,
    recipe_runs: Sequence[WorkerRun] = (),
    control_recipes: Sequence[str] = ("fp32",),
) -> list[Finding]:
    """Run every check; findings come back errors first, then warnings, then info.

    `worker_audit` and `environ` are the control recipe's worker (its report and the environment it
    started with; `control_recipes` the recipes that start with the same thread variables), and
    `recipe_runs` one worker for each other thread setting of the profile's recipes.
    `libraries` maps a library name ("jemalloc") to the path found on disk or None;
    `thermal` gives the temperature and governors; `profile` is the requested profile.
    """
    control = WorkerRun(tuple(control_recipes), environ, worker_audit)
    ctx = Context(host, worker_audit, environ, throttle, profile, libraries or {}, thermal, (control, *recipe_runs))
    findings = [f for check in (CHECKS if checks is None else checks) for f in check(ctx)]
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when a finding is an error (the numbers would be spoiled), else 0."""
    return 1 if any(f.level == "error" for f in findings) else 0


def format_findings(findings: Iterable[Finding]) -> str:
    """Readable text: one block per finding with its fix; "no problems found" when empty."""
    blocks = [f"{f.level} [{f.code}]: {f.message}\n  fix: {f.fix}" for f in findings]
    return "\n\n".join(blocks) if blocks else "no problems found"

"""Findings that ruin benchmark numbers, each with the fix.

Pure functions over data the caller gathered (host detection, the worker's
self-report, the environment), so every check is testable with plain dicts.
A check is a function in `CHECKS`; adding one is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sdperf.config.recipes import FP32_HINTS, THREAD_VARIABLES
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
class Context:
    """Everything a check may look at."""

    host: HostInfo
    worker_audit: Mapping | None
    environ: Mapping[str, str]
    throttle: ThrottleState | None = None
    profile: str | None = None
    libraries: Mapping[str, str | None] = field(default_factory=dict)
    thermal: ThermalState | None = None

    @property
    def thread_count(self) -> str:
        """Physical cores (else logical) as text, for fixes such as OMP_NUM_THREADS=4."""
        cores = self.host.cpu.physical_cores or self.host.cpu.logical_cores
        return str(cores) if cores else "<physical cores>"

    @property
    def pi_board(self) -> str | None:
        return self.host.pi.board if self.host.pi is not None else None

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


def check_blas_openmp(ctx: Context) -> Iterator[Finding]:
    """pthreads OpenBLAS next to OpenMP: both spin up a pool per core (PyTorch #52047)."""
    pools = _pools(ctx.worker_audit)
    blas = [
        p for p in pools
        if p.get("internal_api") == "openblas"
        and p.get("threading_layer") == "pthreads"
        and _threads(p) > 1
    ]
    omp = [p for p in pools if p.get("user_api") == "openmp" and _threads(p) > 1]
    if not blas or not omp:
        return
    b, o = blas[0], omp[0]
    yield Finding(
        "error",
        "openblas-openmp-oversubscription",
        f"OpenBLAS built with pthreads ({_threads(b)} threads, {b.get('filepath', '?')}) runs "
        f"next to an OpenMP pool ({o.get('internal_api', 'openmp')}, {_threads(o)} threads, "
        f"{o.get('filepath', '?')}): the two pools oversubscribe the cores and OpenBLAS may spin "
        "or hang ('Detect OpenMP Loop and this application may hang', PyTorch issue 52047); "
        "on a Pi 5 this made one image take 32 min instead of 14 min",
        f"run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS={ctx.thread_count}",
    )


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


def check_thread_variables(ctx: Context) -> Iterator[Finding]:
    """OMP/OpenBLAS/MKL thread counts: set, valid, and not above the core count."""
    if "OMP_NUM_THREADS" not in ctx.environ:
        yield Finding(
            "warning",
            "omp-num-threads-unset",
            "OMP_NUM_THREADS is not set, so PyTorch, OpenMP and BLAS libraries each pick "
            "their own thread counts and runs are not comparable",
            f"export OMP_NUM_THREADS={ctx.thread_count}",
        )
    logical = ctx.host.cpu.logical_cores
    for name in THREAD_VARIABLES:
        if name not in ctx.environ:
            continue
        value = ctx.environ[name]
        count = _thread_value(name, value)
        if count is None:
            yield Finding(
                "error",
                "thread-variable-invalid",
                f"{name}={value!r} is not a positive integer; libraries ignore it or fail",
                f"export {name}={ctx.thread_count}",
            )
        elif logical and count > logical:
            yield Finding(
                "warning",
                "thread-variable-oversubscribed",
                f"{name}={count} is more than the {logical} logical cores of this host, "
                "so threads fight for cores",
                f"export {name}={ctx.thread_count}",
            )


def check_threads_honoured(ctx: Context) -> Iterator[Finding]:
    """OMP_NUM_THREADS asked for N but the worker's torch runs another count.

    torch caps its default at the core count (torch 2.13 turns OMP_NUM_THREADS=4 into 2
    threads on a 2-core host), so a setting copied from another machine quietly changes.
    """
    value = ctx.environ.get("OMP_NUM_THREADS")
    wanted = _thread_value("OMP_NUM_THREADS", value) if value else None
    actual = (ctx.worker_audit or {}).get("torch_threads")
    if wanted is None or not isinstance(actual, int) or actual == wanted:
        return
    yield Finding(
        "warning",
        "thread-variable-not-honoured",
        f"OMP_NUM_THREADS={value} but torch in the worker runs {actual} intra-op threads, "
        "so results are not those of the setting asked for",
        f"export OMP_NUM_THREADS={actual} to ask for what runs, or run on a host with {wanted} cores",
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
) -> list[Finding]:
    """Run every check; findings come back errors first, then warnings, then info.

    `libraries` maps a library name ("jemalloc") to the path found on disk or None;
    `thermal` gives the temperature and governors; `profile` is the requested profile.
    """
    ctx = Context(host, worker_audit, environ, throttle, profile, libraries or {}, thermal)
    findings = [f for check in (CHECKS if checks is None else checks) for f in check(ctx)]
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


def format_findings(findings: Iterable[Finding]) -> str:
    """Readable text: one block per finding with its fix; "no problems found" when empty."""
    blocks = [f"{f.level} [{f.code}]: {f.message}\n  fix: {f.fix}" for f in findings]
    return "\n\n".join(blocks) if blocks else "no problems found"

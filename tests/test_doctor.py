"""Each doctor check fires on bad data and stays quiet on good data."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from sdperf.host.cpu import CpuInfo
from sdperf.host.detection import HostInfo, match_profiles
from sdperf.host.devices import GpuInfo
from sdperf.host.doctor import CHECKS, LEVELS, Finding, diagnose, format_findings
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


def test_openblas_pthreads_with_openmp_is_an_error() -> None:
    audit = good_audit()
    audit["threadpools"][1]["num_threads"] = 4
    finding = only(run(make_host(logical=8, physical=4), audit), "openblas-openmp-oversubscription")
    assert finding.level == "error"
    assert "52047" in finding.message and "libopenblas.so" in finding.message
    assert finding.fix == "run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=4"


@pytest.mark.parametrize(
    ("layer", "blas_threads", "omp_threads"),
    [("openmp", 4, 4), ("pthreads", 1, 4), ("pthreads", 4, 1), ("disabled", 4, 4)],
)
def test_openblas_openmp_quiet_when_safe(layer: str, blas_threads: int, omp_threads: int) -> None:
    audit = good_audit()
    audit["threadpools"][0]["num_threads"] = omp_threads
    audit["threadpools"][1].update(threading_layer=layer, num_threads=blas_threads)
    assert "openblas-openmp-oversubscription" not in codes(run(audit=audit))


# --------------------------------------------------------- thread variables


def test_omp_num_threads_unset() -> None:
    finding = only(run(environ={}), "omp-num-threads-unset")
    assert finding.level == "warning"
    assert finding.fix == "export OMP_NUM_THREADS=4"


@pytest.mark.parametrize(
    ("name", "value"),
    [("OMP_NUM_THREADS", "0"), ("OMP_NUM_THREADS", ""), ("OPENBLAS_NUM_THREADS", "four"),
     ("MKL_NUM_THREADS", "-2"), ("MKL_NUM_THREADS", "2,1")],
)
def test_thread_variable_invalid(name: str, value: str) -> None:
    finding = only(run(environ={**GOOD_ENV, name: value}), "thread-variable-invalid")
    assert finding.level == "error"
    assert f"{name}={value!r}" in finding.message
    assert finding.fix == f"export {name}=4"


def test_thread_variable_above_core_count() -> None:
    finding = only(run(environ={"OMP_NUM_THREADS": "16"}), "thread-variable-oversubscribed")
    assert finding.level == "warning"
    assert "OMP_NUM_THREADS=16" in finding.message and "8 logical cores" in finding.message


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
    assert "OMP_NUM_THREADS=2" in finding.fix


def test_thread_variable_honoured_or_unset_is_quiet() -> None:
    assert "thread-variable-not-honoured" not in codes(run(audit=good_audit(torch_threads=4)))
    assert "thread-variable-not-honoured" not in codes(run(audit=good_audit(torch_threads=2), environ={}))


def test_fix_uses_logical_cores_when_physical_unknown() -> None:
    finding = only(run(make_host(logical=6, physical=None), environ={}), "omp-num-threads-unset")
    assert finding.fix == "export OMP_NUM_THREADS=6"


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
            "export OMP_NUM_THREADS=4",
        ),
    ]
    assert format_findings(findings) == (
        "error [pi-under-voltage]: the Pi is under-voltage now\n"
        "  fix: use a 5 V 5 A supply\n"
        "\n"
        "warning [omp-num-threads-unset]: OMP_NUM_THREADS is not set\n"
        "  fix: export OMP_NUM_THREADS=4"
    )
    assert format_findings([]) == "no problems found"

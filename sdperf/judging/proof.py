"""Did the case's settings take effect? The worker's own report, checked against the case's expectations.

`Case.expect` (built by `sdperf.execution.cases.expectations`) says what must be true inside
the worker: thread pools, unset thread variables, a preloaded allocator mapped,
MALLOC_CONF, the CPUs it may run on, a static OpenVINO shape, the precision hint.
Any mismatch fails the case with what was asked and what runs: a recipe never
quietly measures something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sdperf.config.recipes import FP32_HINTS

# threadpoolctl's internal_api of the pools each variable governs.
_GOVERNED_BY = {"openmp": "OMP_NUM_THREADS", "openblas": "OPENBLAS_NUM_THREADS", "mkl": "MKL_NUM_THREADS"}


def _governing_variable(pool: Mapping) -> str | None:
    """The variable that sizes `pool`. An OpenBLAS built with OpenMP (torch 2.10's aarch64 wheel,
    seen under tools/emulated_pi5.sh) takes OMP_NUM_THREADS and ignores OPENBLAS_NUM_THREADS."""
    if pool.get("internal_api") == "openblas" and pool.get("threading_layer") == "openmp":
        return "OMP_NUM_THREADS"
    return _GOVERNED_BY.get(str(pool.get("internal_api")))


def _pool_counts(audit: Mapping, variable: str) -> list[tuple[int, str, str]]:
    """(threads, library, what it is) of each pool `variable` governs."""
    pools = audit.get("threadpools") or []
    return [
        (int(pool.get("num_threads") or 0), str(pool.get("filepath", "?")),
         str(pool.get("internal_api")) + (" (OpenMP build)" if pool.get("internal_api") == "openblas"
                                          and variable == "OMP_NUM_THREADS" else ""))
        for pool in pools
        if isinstance(pool, Mapping) and _governing_variable(pool) == variable
    ]


def _thread_problems(expect: Mapping, audit: Mapping) -> list[str]:
    problems = []
    capped = expect.get("capped") or {}
    for variable, wanted in (expect.get("threads") or {}).items():
        seen = (audit.get("environment") or {}).get(variable)
        if seen != str(wanted):
            problems.append(f"{variable}={wanted} was set, but the worker's environment has {variable}={seen}")
            continue
        # A profile's count above this host's CPUs runs capped (`sdperf.execution.cases.expectations`).
        runs = capped.get(variable, wanted)
        asked = f"{variable}={wanted}" + (f" (capped to {runs} CPUs)" if variable in capped else "")
        # Above the CPUs, torch's x86 OpenMP runs the capped count, the aarch64 one (seen under
        # qemu) the count asked: either way the setting is in force.
        if variable == "OMP_NUM_THREADS" and audit.get("torch_threads") not in (wanted, runs):
            problems.append(f"{asked} but torch runs {audit.get('torch_threads')} intra-op threads")
        for count, path, what in _pool_counts(audit, variable):
            if count not in (wanted, runs):
                problems.append(f"{asked} but the {what} pool of {path} runs {count} threads")
    environment = audit.get("environment") or {}
    for variable in expect.get("unset") or ():
        if environment.get(variable) is not None:
            problems.append(f"{variable} must be unset, but the worker has {variable}={environment[variable]}")
    for variable, value in (expect.get("environment") or {}).items():
        if environment.get(variable) != value:
            asked = "unset" if value is None else f"{value!r}"
            problems.append(f"{variable} was to be {asked}, but the worker has {environment.get(variable)!r}")
    return problems


def _allocator_problems(expect: Mapping, audit: Mapping) -> list[str]:
    problems = []
    mapped = audit.get("allocators") or []
    for allocator in expect.get("allocators") or ():
        if allocator not in mapped:
            preload = (audit.get("environment") or {}).get("LD_PRELOAD")
            problems.append(
                f"{allocator} is not mapped into the worker (LD_PRELOAD={preload}; mapped allocators: "
                f"{', '.join(mapped) or 'none, glibc malloc'}): the dynamic linker ignored the preload"
            )
    if "malloc_conf" in expect:
        seen = (audit.get("environment") or {}).get("MALLOC_CONF")
        if seen != expect["malloc_conf"]:
            problems.append(f"MALLOC_CONF={expect['malloc_conf']!r} was set, but the worker has {seen!r}")
    return problems


def _cpu_problems(expect: Mapping, audit: Mapping) -> list[str]:
    if "cpus" not in expect:
        return []
    wanted = list(expect["cpus"])
    seen = audit.get("cpus")
    if seen != wanted:
        return [f"the worker should run on CPUs {wanted} ({expect.get('pinned_by')}), but may run on {seen}"]
    return []


def _openvino_problems(expect: Mapping, proof: Mapping) -> list[str]:
    problems = []
    load = proof.get("load") or {}
    if expect.get("openvino_precision"):
        hint = str((load.get("openvino") or {}).get("INFERENCE_PRECISION_HINT", "not reported"))
        if hint.strip().lower() not in FP32_HINTS:
            problems.append(f"OpenVINO was asked for INFERENCE_PRECISION_HINT=f32 but the compiled UNet runs {hint}")
    if expect.get("static_shape"):
        shapes = load.get("unet_input_shapes") or {}
        dynamic = {name: shape for name, shape in shapes.items() if "?" in shape}
        if not shapes or dynamic:
            problems.append(
                "the OpenVINO UNet should be compiled for a static shape, but its inputs are "
                + (", ".join(f"{name} {shape}" for name, shape in dynamic.items()) or "not reported")
            )
    return problems


def problems(case_expect: Mapping[str, Any], load_reply: Mapping[str, Any]) -> list[str]:
    """Everything the recipe promised that the worker does not show; [] when it is all in force."""
    audit = load_reply.get("audit") or {}
    proof = load_reply.get("transform_proof") or {}
    return [
        *_thread_problems(case_expect, audit),
        *_allocator_problems(case_expect, audit),
        *_cpu_problems(case_expect, audit),
        *_openvino_problems(case_expect, proof),
    ]

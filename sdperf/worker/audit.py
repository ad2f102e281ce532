"""What is really in force inside the worker: threads, allocator, package versions, memory."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sdperf.common.environment import PROCESS_START_VARIABLES
from sdperf.common.packages import package_versions

_ALLOCATORS = {"jemalloc": re.compile(r"libjemalloc"), "tcmalloc": re.compile(r"libtcmalloc")}


def mapped_allocators(maps_file: Path = Path("/proc/self/maps")) -> list[str]:
    """Allocators whose shared library is mapped into this process (proof LD_PRELOAD worked)."""
    try:
        maps = maps_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [name for name, pattern in _ALLOCATORS.items() if pattern.search(maps)]


def torch_blas() -> dict[str, Any]:
    """Which BLAS torch itself calls: its build's BLAS_INFO ("mkl" on x86 wheels, where MKL is linked in
    statically and threadpoolctl cannot see it; "open" for OpenBLAS) and torch's folder, which tells
    torch's own OpenBLAS (aarch64 wheels: torch.libs/) from numpy's bundled copy (`sdperf doctor`)."""
    import torch

    build = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return {
        "blas_info": build.group(1) if build else None,
        "mkl": torch.backends.mkl.is_available(),
        "package_dir": str(Path(torch.__file__).parent),
        # The CUDA version of a CUDA build, else None: PyPI's aarch64 torch 2.13 is one (NVPL, nvidia-* packages).
        "cuda": torch.version.cuda,
    }


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's vendor as the kernel reports it: GenuineIntel, AuthenticAMD, or on Arm the
    implementer code (0x41: Arm). "unknown" when /proc/cpuinfo says neither."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    for field, prefix in (("vendor_id", ""), ("CPU implementer", "implementer-")):
        found = re.search(rf"^{field}\s*:\s*(\S+)", text, re.MULTILINE)
        if found:
            return prefix + found.group(1)
    return "unknown"


def thread_audit() -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_info

    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "parallel_info": torch.__config__.parallel_info(),
        "threadpools": threadpool_info(),
        "torch_blas": torch_blas(),
        # Which SIMD kernels torch dispatches to: images are bitwise comparable only within one.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # And which MKL and oneDNN pick: they choose their code paths by vendor as well as by
        # instruction set (an AMD EPYC with AVX-512 draws another image than an Ice Lake).
        "cpu_kernels": f"{torch.backends.cpu.get_cpu_capability()}-{cpu_vendor()}",
    }


def worker_audit() -> dict[str, Any]:
    audit = thread_audit()
    audit["allocators"] = mapped_allocators()
    # The worker starts from an allow-list (sdperf.execution.cases): everything it has was chosen.
    # The process-start variables are always listed, None when unset.
    audit["environment"] = {**dict.fromkeys(PROCESS_START_VARIABLES), **os.environ}
    # The CPUs this process may run on: proof that numactl/taskset pinning took effect.
    audit["cpus"] = sorted(os.sched_getaffinity(0))
    audit["packages"] = package_versions()
    audit["pid"] = os.getpid()
    return audit


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers one call only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    # ru_maxrss is in KiB on Linux; it covers the whole process lifetime.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_cuda_peaks() -> bool:
    """Reset torch's CUDA peak counters when this process uses CUDA (never initialises it)."""
    import torch

    if not torch.cuda.is_initialized():
        return False
    torch.cuda.reset_peak_memory_stats()
    return True


def cuda_peaks() -> dict[str, int]:
    """Peak bytes allocated by tensors and reserved by the caching allocator since the reset."""
    import torch

    if not torch.cuda.is_initialized():
        return {}
    return {
        "cuda_max_allocated_bytes": int(torch.cuda.max_memory_allocated()),
        "cuda_max_reserved_bytes": int(torch.cuda.max_memory_reserved()),
    }


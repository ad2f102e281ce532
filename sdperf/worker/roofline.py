"""How much work one denoiser call is, and what this host's matrix multiply can do.

The work is counted with torch's own FLOP counter on the meta device: the denoiser is made
from the model folder's config with no weights, and called once with the inputs the
pipeline gives it for the case's workload, so counting costs about a second even for SD3
Medium (and is cached), and works for every loader (an OpenVINO recipe runs the same network). Matrix
multiplies, convolutions and attention count; norms and elementwise work do not (the usual
convention, and where the time goes).

The peak is a short GEMM measurement with all of the host's cores: the best of torch.mm and
a linear layer over growing square sizes, cached per host, stack, dtype and device, and
measured in a child of the worker (sdperf.worker.aside), never in the worker itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

# The pipelines' text sequence lengths: CLIP's 77 tokens; SD3 adds T5's (diffusers'
# max_sequence_length default, 256) or, without T5, 77 zero rows in its place.
CLIP_TOKENS = 77
T5_TOKENS = 256
# Recipes whose transforms compute in another dtype than the weights are loaded in.
AUTOCAST_DTYPES = {"bf16_autocast": "bfloat16", "ipex_bf16": "bfloat16"}
# Square sizes tried, smallest first: a size is left once one call takes GEMM_CALL_S, so a dtype
# this host only emulates (bfloat16 without AVX512-BF16: about 1 GFLOP/s in torch.mm) costs a
# second, not minutes. Bump GEMM_METHOD when the measurement changes: it keys the cache.
GEMM_SIZES = {"cpu": (256, 512, 1024, 2048), "cuda": (1024, 4096, 8192)}
GEMM_CALL_S = 0.1
GEMM_REPEATS = 5
GEMM_METHOD = 2
# Bump when the FLOP count changes (what counts, the inputs): it keys the count's cache.
FLOPS_METHOD = 1


def compute_dtype(case: dict) -> str:
    for transform in case.get("transforms", ()):
        if transform in AUTOCAST_DTYPES:
            return AUTOCAST_DTYPES[transform]
    return case.get("load_dtype") or "float32"


def _denoiser(model_path: Path, pipeline_class: str):
    """The denoiser of a diffusers folder, made on the meta device from its config."""
    if pipeline_class == "StableDiffusion3Pipeline":
        from diffusers import SD3Transformer2DModel as Denoiser

        folder = "transformer"
    else:
        from diffusers import UNet2DConditionModel as Denoiser

        folder = "unet"
    return Denoiser.from_config(Denoiser.load_config(str(model_path / folder)))


def denoiser_flops(model_path: Path, pipeline_class: str, workload: dict, guidance: float | None,
                   with_t5: bool) -> int:
    """FLOPs of one denoiser call as the pipeline makes it: classifier-free guidance (a
    guidance scale above 1) runs the unconditional and the conditional halves as one batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2 if guidance is not None and guidance > 1 else 1
    with torch.device("meta"):
        denoiser = _denoiser(model_path, pipeline_class)
        config = denoiser.config
        latent = (batch, config.in_channels, workload["height"] // 8, workload["width"] // 8)
        if pipeline_class == "StableDiffusion3Pipeline":
            text = CLIP_TOKENS + (T5_TOKENS if with_t5 else CLIP_TOKENS)
            inputs = {
                "hidden_states": torch.empty(latent),
                "timestep": torch.empty(batch),
                "encoder_hidden_states": torch.empty(batch, text, config.joint_attention_dim),
                "pooled_projections": torch.empty(batch, config.pooled_projection_dim),
            }
        else:
            inputs = {
                "sample": torch.empty(latent),
                "timestep": torch.empty(()),
                "encoder_hidden_states": torch.empty(batch, CLIP_TOKENS, config.cross_attention_dim),
            }
        with FlopCounterMode(display=False) as counter:
            denoiser(**inputs)
    return int(counter.get_total_flops())


def cached_denoiser_flops(model_path: Path, pipeline_class: str, workload: dict, guidance: float | None,
                          with_t5: bool, cache: Path) -> tuple[int, bool]:
    """`denoiser_flops`, kept under `cache` per denoiser config, input shapes and the torch and
    diffusers versions that count them: every worker of a run would count the same network again
    (0.3 s for the tiny UNet here, 1.3 s for SD 1.5's, several times that on a Pi). Returns the
    count and whether it came from the cache."""
    import diffusers
    import torch

    folder = "transformer" if pipeline_class == "StableDiffusion3Pipeline" else "unet"
    text = json.dumps([FLOPS_METHOD, (model_path / folder / "config.json").read_text(encoding="utf-8"), pipeline_class,
                       workload["height"], workload["width"], guidance is not None and guidance > 1, with_t5,
                       torch.__version__, diffusers.__version__])
    path = cache / "denoiser-flops" / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.json"
    if path.is_file():
        return int(json.loads(path.read_text(encoding="utf-8"))["flops"]), True
    flops = denoiser_flops(model_path, pipeline_class, workload, guidance, with_t5)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"flops": flops}), encoding="utf-8")
        partial.replace(path)  # whole or absent: a worker killed mid-write leaves no half file
    except OSError:
        pass  # a read-only cache only costs counting again
    return flops, False


def _stack_key(dtype: str, device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("model name", "flags")):
                cpu += line
    except OSError:
        pass
    if device == "cuda":
        cpu = torch.cuda.get_device_name()
    text = json.dumps([GEMM_METHOD, cpu, os.cpu_count(), torch.__version__, torch.backends.cpu.get_cpu_capability(),
                       dtype, device])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _best_seconds(run, synchronize) -> float:
    """The fastest of a few calls of `run` after one warm-up."""
    run()
    best = float("inf")
    for _ in range(GEMM_REPEATS):
        synchronize()
        started = time.perf_counter()
        run()
        synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def _measure_gemm(dtype_name: str, device: str, threads: int) -> tuple[float, int]:
    """(FLOP/s, size): the best square matrix multiply, as torch.mm and as a linear layer
    (addmm: what most layers call, and on some CPUs a faster path for a dtype)."""
    import torch

    dtype = getattr(torch, dtype_name)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    best = (0.0, 0)
    try:
        for operation in (torch.mm, torch.nn.functional.linear):
            for size in GEMM_SIZES[device]:
                a = torch.randn(size, size, device=device).to(dtype)
                b = torch.randn(size, size, device=device).to(dtype)
                seconds = _best_seconds(lambda: operation(a, b), synchronize)
                best = max(best, (2.0 * size**3 / seconds, size))
                if seconds >= GEMM_CALL_S:
                    break
    finally:
        torch.set_num_threads(previous)
    return best


def _peak_path(dtype: str, device: str, cores: int, cache: Path) -> Path:
    return cache / "gemm-peak" / f"{_stack_key(dtype, device)}-{cores}.json"


def cached_gemm_peak(dtype: str, device: str, cores: int, cache: Path) -> dict[str, Any] | None:
    """`gemm_peak` as cached, or None when this host and stack have not measured it."""
    try:
        return {**json.loads(_peak_path(dtype, device, cores, cache).read_text(encoding="utf-8")), "cached": True}
    except (OSError, ValueError):
        return None


def gemm_peak(dtype: str, device: str, cores: int, cache: Path) -> dict[str, Any]:
    """The best of a few square matrix multiplies, in FLOP/s, with `cores` threads; cached. A
    worker has a child measure it (sdperf.worker.aside): the measurement leaves memory behind."""
    cached = cached_gemm_peak(dtype, device, cores, cache)
    if cached is not None:
        return cached
    path = _peak_path(dtype, device, cores, cache)
    flops, size = _measure_gemm(dtype, device, cores)
    peak = {"peak_flops": flops, "dtype": dtype, "device": device, "threads": cores, "size": size}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(peak), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass  # a read-only cache only costs measuring again
    return {**peak, "cached": False}

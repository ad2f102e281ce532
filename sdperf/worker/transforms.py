"""Pipeline transforms named by recipes, applied in the worker after loading.

Each transform receives the loaded pipeline and the case, returns the pipeline to
run, and a dict of facts that prove it took effect (recorded with the result).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Transform = Callable[[Any, dict], tuple[Any, dict]]

def dpm_solver(pipe: Any, case: dict) -> tuple[Any, dict]:
    from diffusers import DPMSolverMultistepScheduler

    replaced = type(pipe.scheduler).__name__
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    return pipe, {"scheduler": type(pipe.scheduler).__name__, "replaced": replaced}


def testonly_slowdown(pipe: Any, case: dict) -> tuple[Any, dict]:
    """A known regression for measuring verdicts: each call sleeps `factor` times its own duration."""
    import os
    import time

    raw = os.environ.get("SDPERF_TESTONLY_SLOWDOWN", "0.10")
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"SDPERF_TESTONLY_SLOWDOWN={raw!r} must be a number, e.g. 0.10 for 10% slower") from None
    if not 0 <= factor <= 10:
        raise ValueError(f"SDPERF_TESTONLY_SLOWDOWN={raw!r} must lie between 0 and 10")
    def slowed(call):
        started = time.perf_counter()
        output = call()
        time.sleep((time.perf_counter() - started) * factor)
        return output

    _wrap_call(pipe, slowed)
    return pipe, {"slowdown": factor}


def _wrap_call(pipe: Any, around) -> None:
    """Run every `pipe(...)` inside `around(call)`; `pipe(...)` looks __call__ up on the
    class, so the instance gets a subclass of its own (functools.wraps keeps the signature
    the worker inspects)."""
    import functools

    plain_call = type(pipe).__call__

    @functools.wraps(plain_call)
    def wrapped(self, *args, **kwargs):
        return around(lambda: plain_call(self, *args, **kwargs))

    pipe.__class__ = type(type(pipe).__name__, (type(pipe),), {"__call__": wrapped})


def bf16_autocast(pipe: Any, case: dict) -> tuple[Any, dict]:
    """torch's own bf16 path on CPU (IPEX's upstream replacement): autocast + channels_last."""
    import torch

    converted = []
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to(memory_format=torch.channels_last)
            converted.append(name)

    def under_autocast(call):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return call()

    _wrap_call(pipe, under_autocast)
    capabilities = set(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else set()
    return pipe, {
        "autocast": "cpu bfloat16",
        "channels_last": converted,
        # Without AMX or AVX512-BF16, bf16 is emulated and slower than fp32: say which ran.
        "native_bf16": sorted(capabilities & {"amx_bf16", "avx512_bf16"}),
    }


def torch_compile(pipe: Any, case: dict) -> tuple[Any, dict]:
    """Inductor compiles the denoiser on the first call (the warm-up pays; see first_call_s)."""
    import os

    import torch

    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    compiled = torch.compile(getattr(pipe, name), backend="inductor")
    setattr(pipe, name, compiled)
    return pipe, {"compiled": name, "backend": "inductor", "cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}


def ipex_bf16(pipe: Any, case: dict) -> tuple[Any, dict]:
    """The Xeon report's IPEX step (runs only in the dedicated IPEX environment). The report
    also optimised the text encoder; with IPEX 2.8 and transformers 5.5 that turns CLIP's
    output into noise in bf16 (9.3 dB: an unrelated image), so it runs under autocast only."""
    import intel_extension_for_pytorch as ipex
    import torch

    optimized = []
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        module = module.eval().to(memory_format=torch.channels_last)
        setattr(pipe, name, ipex.optimize(module, dtype=torch.bfloat16, inplace=True))
        optimized.append(name)

    def under_autocast(call):
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
            return call()

    _wrap_call(pipe, under_autocast)
    return pipe, {"ipex": ipex.__version__, "torch": torch.__version__, "optimized": optimized, "autocast_only": ["text_encoder"]}


def _cuda_device() -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"this recipe needs CUDA; torch {torch.__version__} finds no CUDA device")
    return "cuda"


def to_cuda(pipe: Any, case: dict) -> tuple[Any, dict]:
    pipe.to(_cuda_device())
    return pipe, {"device": str(pipe.device)}


def model_cpu_offload(pipe: Any, case: dict) -> tuple[Any, dict]:
    pipe.enable_model_cpu_offload()
    return pipe, {"offload": "model"}


def sequential_cpu_offload(pipe: Any, case: dict) -> tuple[Any, dict]:
    pipe.enable_sequential_cpu_offload()
    return pipe, {"offload": "sequential"}


def _group_offload(level: str, stream: bool) -> Transform:
    def transform(pipe: Any, case: dict) -> tuple[Any, dict]:
        import torch

        options = {"num_blocks_per_group": 1} if level == "block" else {}
        pipe.enable_group_offload(
            onload_device=torch.device(_cuda_device()), offload_device=torch.device("cpu"),
            offload_type=f"{level}_level", use_stream=stream, **options,
        )
        return pipe, {"offload": f"group {level}_level", "use_stream": stream}

    return transform


def vae_tiling(pipe: Any, case: dict) -> tuple[Any, dict]:
    pipe.vae.enable_tiling()
    return pipe, {"vae_tiling": bool(getattr(pipe.vae, "use_tiling", False))}


TRANSFORMS: dict[str, Transform] = {
    "dpm_solver": dpm_solver,
    "testonly_slowdown": testonly_slowdown,
    "bf16_autocast": bf16_autocast,
    "torch_compile": torch_compile,
    "ipex_bf16": ipex_bf16,
    "to_cuda": to_cuda,
    "model_cpu_offload": model_cpu_offload,
    "sequential_cpu_offload": sequential_cpu_offload,
    **{
        f"group_offload_{level}{'_stream' if stream else ''}": _group_offload(level, stream)
        for level in ("block", "leaf")
        for stream in (False, True)
    },
    "vae_tiling": vae_tiling,
}


def apply(names: list[str] | tuple[str, ...], pipe: Any, case: dict) -> tuple[Any, dict]:
    """Apply the transforms in order; the proof maps each transform to what it recorded."""
    proof: dict[str, Any] = {}
    for name in names:
        try:
            transform = TRANSFORMS[name]
        except KeyError:
            raise ValueError(f"transform {name!r} is unknown; known: {', '.join(sorted(TRANSFORMS))}") from None
        pipe, proof[name] = transform(pipe, case)
    return pipe, proof

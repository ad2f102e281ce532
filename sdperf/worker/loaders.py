"""How a case's pipeline is loaded: diffusers (dtype, dropped or quantised
components) or OpenVINO through optimum-intel (dynamic or static shapes, IR cached).

Each loader returns (pipeline, proof): the proof records what was really loaded. `cap_vram`
sets up the GPU first when a smaller card is emulated.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# OpenVINO may run bf16 on AMX or f16 on Arm unless told f32: the recipes are fp32.
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
_RECORDED_OV_PROPERTIES = ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS")
_IR_MARKER = "sdperf-ir.json"


def import_modules(case: dict) -> None:
    """Import what the loader needs, so that the timed load excludes import time."""
    import diffusers  # noqa: F401

    if case.get("loader", "diffusers").startswith("openvino"):
        import optimum.intel  # noqa: F401


def cap_vram() -> dict[str, int | float] | None:
    """Emulate a smaller card (SDPERF_VRAM_CAP_MIB) on this GPU: cap torch's caching
    allocator so that the cap less the CUDA context is all the tensors may take."""
    import torch

    raw = os.environ.get("SDPERF_VRAM_CAP_MIB")
    if not raw:
        return None
    cap = int(raw) * 2**20
    torch.cuda.init()
    free, total = torch.cuda.mem_get_info()
    # What is in use before any tensor: the CUDA context (and other processes' memory).
    context = total - free
    fraction = (cap - context) / total
    if not 0 < fraction <= 1:
        raise ValueError(
            f"SDPERF_VRAM_CAP_MIB={raw} cannot be emulated on this {total // 2**20} MiB GPU with "
            f"{context // 2**20} MiB already in use; give a cap between {context // 2**20 + 1} and {total // 2**20}"
        )
    torch.cuda.set_per_process_memory_fraction(fraction)
    return {"cap_mib": int(raw), "total_mib": total // 2**20, "context_mib": context // 2**20, "fraction": fraction}


def load(path: Path, case: dict) -> tuple[Any, dict]:
    loader = case.get("loader", "diffusers")
    if loader == "diffusers":
        return load_diffusers(path, case)
    if loader in ("openvino", "openvino_static"):
        return load_openvino(path, case, static=loader == "openvino_static")
    raise ValueError(f"loader {loader!r} is unknown; known: diffusers, openvino, openvino_static")


def load_diffusers(path: Path, case: dict) -> tuple[Any, dict]:
    import torch
    from diffusers import DiffusionPipeline

    options: dict[str, Any] = {}
    proof: dict[str, Any] = {}
    dtype_name = case.get("load_dtype")
    if dtype_name:
        options["torch_dtype"] = getattr(torch, dtype_name)
    for component in case.get("drop_components", ()):
        options[component] = None
    for component, scheme in (case.get("quantize") or {}).items():
        options[component] = _quantized_component(path, component, scheme, options.get("torch_dtype"))
        proof[f"{component}_quantized"] = scheme
    # Same call for built-in and real weights. low_cpu_mem_usage: without it an
    # 8 GB Pi was OOM-killed loading SD 1.5. Offline, safetensors only.
    pipe = DiffusionPipeline.from_pretrained(
        str(path), use_safetensors=True, low_cpu_mem_usage=True, local_files_only=True, **options
    )
    if dtype_name:
        dtypes = sorted({str(p.dtype) for m in _modules(pipe) for p in m.parameters()})
        proof["parameter_dtypes"] = dtypes
    dropped = [c for c in case.get("drop_components", ()) if getattr(pipe, c, None) is not None]
    if dropped:
        raise RuntimeError(f"components {dropped} were asked to be dropped but are loaded")
    if case.get("drop_components"):
        proof["dropped"] = list(case["drop_components"])
    return pipe, proof


def _modules(pipe: Any) -> list:
    import torch

    return [c for c in getattr(pipe, "components", {}).values() if isinstance(c, torch.nn.Module)]


def _quantized_component(path: Path, component: str, scheme: str, dtype: Any) -> Any:
    """A component loaded with int8 weights through torchao (weight-only, runs on CPU and CUDA)."""
    if scheme != "int8":
        raise ValueError(f"quantisation scheme {scheme!r} is unknown; known: int8")
    import transformers
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    config = json.loads((path / component / "config.json").read_text(encoding="utf-8"))
    model_class = getattr(transformers, config["architectures"][0])
    model = model_class.from_pretrained(str(path / component), torch_dtype=dtype, use_safetensors=True, local_files_only=True)
    quantize_(model, Int8WeightOnlyConfig())
    return model


def ir_folder(path: Path, cache: Path) -> Path:
    """Where the exported IR of this model is cached: keyed by the weights and the versions
    that shape the export, so a new optimum-intel or model never reuses a stale IR."""
    from sdperf.common.packages import package_versions
    from sdperf.models.store import weight_digest

    versions = package_versions()
    key = {
        "weights": weight_digest(path),
        **{name: versions.get(name) for name in ("openvino", "optimum-intel", "optimum", "diffusers", "transformers", "torch")},
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache / "openvino-ir" / f"{path.name}-{digest}"


def load_openvino(path: Path, case: dict, static: bool) -> tuple[Any, dict]:
    from filelock import FileLock
    from optimum.intel import OVDiffusionPipeline

    from sdperf.models.store import cache_root

    folder = ir_folder(path, cache_root())
    folder.parent.mkdir(parents=True, exist_ok=True)
    exported = False
    with FileLock(str(folder) + ".lock"):
        if not (folder / _IR_MARKER).is_file():
            # Export once (no weight compression: the recipe is fp32), save the IR, mark it complete.
            pipe = OVDiffusionPipeline.from_pretrained(
                str(path), export=True, compile=False, load_in_8bit=False, local_files_only=True
            )
            pipe.save_pretrained(str(folder))
            (folder / _IR_MARKER).write_text(json.dumps({"source": str(path)}))
            exported = True
    pipe = OVDiffusionPipeline.from_pretrained(
        str(folder), compile=False, ov_config=dict(OPENVINO_CONFIG), local_files_only=True
    )
    workload = case["workload"]
    if static:
        pipe.reshape(batch_size=1, height=workload["height"], width=workload["width"], num_images_per_prompt=1)
    pipe.compile()
    proof = {
        "ir_folder": str(folder),
        "exported_now": exported,
        "static_shape": [1, workload["height"], workload["width"]] if static else None,
        "openvino": openvino_properties(pipe),
        "unet_input_shapes": _input_shapes(pipe),
    }
    return pipe, proof


def _denoiser(pipe: Any) -> Any:
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else getattr(pipe, "transformer", None)


def openvino_properties(pipe: Any) -> dict[str, str]:
    """Properties the compiled denoiser really runs with (not what was asked)."""
    request = getattr(_denoiser(pipe), "request", None)
    recorded = {}
    for name in _RECORDED_OV_PROPERTIES:
        try:
            value = request.get_property(name)
        except Exception:  # a property this device does not report
            continue
        # Precision comes back as an openvino Type: its name ("f32"), not its repr.
        recorded[name] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return recorded


def _input_shapes(pipe: Any) -> dict[str, str]:
    model = getattr(_denoiser(pipe), "model", None)
    if model is None:
        return {}
    return {port.get_any_name(): str(port.get_partial_shape()) for port in model.inputs}

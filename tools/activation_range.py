"""Are a built-in model's activations in a normal range over a whole generation?

Runs one generation of a profile's workload on a built-in model (full size by default) with
a hook on every module, and reports per network the largest magnitude seen, the smallest
non-zero one, and how many values were NaN, infinite or subnormal (denormals make x86
float arithmetic many times slower, so synthetic weights must not produce them).

    python tools/activation_range.py --model sd15 --profile pi5
    python tools/activation_range.py --model sd3-medium --profile cuda_lowvram --device cuda --dtype float16

Exits 1 when any value was NaN, infinite or subnormal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sd15", help="built-in model (default: sd15)")
    parser.add_argument("--profile", default="pi5", help="whose workload to run (default: pi5)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the workload's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)

    import torch
    from diffusers import DiffusionPipeline

    from sdperf.config.profiles import load_profiles
    from sdperf.models.build import ensure_builtin

    workload = load_profiles()[args.profile].workload
    dtype = getattr(torch, args.dtype)
    tiny = torch.finfo(dtype).tiny  # the smallest normal number
    path, _ = ensure_builtin(args.model)
    pipe = DiffusionPipeline.from_pretrained(path, torch_dtype=dtype).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    seen: dict[str, dict[str, float]] = {}

    def watch(network: str):
        stats = seen.setdefault(network, {"max_abs": 0.0, "min_nonzero_abs": float("inf"), "nonfinite": 0,
                                          "subnormal": 0, "values": 0})

        def hook(module, inputs, output):
            tensors = output if isinstance(output, (tuple, list)) else [output]
            for tensor in tensors:
                if not torch.is_tensor(tensor) or not tensor.is_floating_point():
                    continue
                magnitude = tensor.detach().abs().float()
                finite = torch.isfinite(magnitude)
                stats["nonfinite"] += int((~finite).sum())
                stats["values"] += magnitude.numel()
                magnitude = magnitude[finite]
                if magnitude.numel():
                    stats["max_abs"] = max(stats["max_abs"], float(magnitude.max()))
                    nonzero = magnitude[magnitude > 0]
                    if nonzero.numel():
                        stats["min_nonzero_abs"] = min(stats["min_nonzero_abs"], float(nonzero.min()))
                        # Values of the compute dtype below its smallest normal number.
                        stats["subnormal"] += int((nonzero < tiny).sum())
        return hook

    for network, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            for module in component.modules():
                module.register_forward_hook(watch(network))
    arguments = {"prompt": workload.prompt, "height": workload.height, "width": workload.width,
                 "num_inference_steps": args.steps or workload.steps, "output_type": "np",
                 "generator": torch.Generator(args.device).manual_seed(workload.seed)}
    if workload.prompt_3:
        arguments["prompt_3"] = workload.prompt_3
    if workload.guidance is not None:
        arguments["guidance_scale"] = workload.guidance
    started = time.perf_counter()
    with torch.no_grad():
        image = pipe(**arguments).images
    report = {"model": args.model, "workload": workload.to_json(), "dtype": args.dtype,
              "smallest_normal": tiny, "seconds": round(time.perf_counter() - started, 1),
              "image_finite": bool(torch.isfinite(torch.from_numpy(image)).all()), "networks": seen}
    print(json.dumps(report, indent=2))
    bad = any(s["nonfinite"] or s["subnormal"] for s in seen.values()) or not report["image_finite"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

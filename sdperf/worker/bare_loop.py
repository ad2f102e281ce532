"""Reference for the harness-overhead benchmark: `pipe(...)` timed by a bare perf_counter.

Loads the model exactly as the worker does, then for every line on stdin runs one
generation and prints `sdperf-bare <seconds>`. No hooks, no protocol, no hashing.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    import torch
    from diffusers import DiffusionPipeline

    from sdperf.models.store import ModelSpec
    from sdperf.worker.aside import builtin_model

    case = json.loads(sys.argv[1])
    spec = ModelSpec.from_json(case["model"])
    path = builtin_model(spec.name)[0] if spec.builtin else spec.path
    pipe = DiffusionPipeline.from_pretrained(
        str(path), use_safetensors=True, low_cpu_mem_usage=True, local_files_only=True
    )
    # The worker disables the progress bar too; drawing it costs time on every step.
    pipe.set_progress_bar_config(disable=True)
    workload = case["workload"]
    print("sdperf-bare ready", flush=True)
    for _ in sys.stdin:
        generator = torch.Generator(workload["generator_device"]).manual_seed(workload["seed"])
        started = time.perf_counter()
        pipe(
            prompt=workload["prompt"],
            height=workload["height"],
            width=workload["width"],
            num_inference_steps=workload["steps"],
            generator=generator,
            output_type="np",
        )
        print(f"sdperf-bare {time.perf_counter() - started!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

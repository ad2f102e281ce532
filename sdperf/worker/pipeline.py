"""Load a pipeline for a case and run timed generations inside the worker."""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from sdperf.common.packages import package_versions
from sdperf.models.store import ModelSpec, weight_digest
from sdperf.worker import aside, audit, loaders, transforms
from sdperf.worker.timing import PhaseRecorder


class WorkloadError(ValueError):
    """The workload asks for something the loaded pipeline cannot do."""


def image_digest(images) -> str:
    """SHA-256 of the raw output array (dtype, shape and bytes): bitwise identity."""
    import numpy as np

    array = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def accepted_arguments(pipe: Any) -> Mapping[str, inspect.Parameter]:
    """The named arguments `pipe(...)` takes. OpenVINO pipelines' own __call__ only forwards
    (*args, **kwargs) to the diffusers pipeline they subclass: read the first signature
    along the class hierarchy that names its arguments."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for cls in type(pipe).__mro__:
        call = cls.__dict__.get("__call__")
        if call is None:
            continue
        parameters = inspect.signature(call).parameters
        if any(p.kind in named and name != "self" for name, p in parameters.items()):
            return parameters
    return inspect.signature(pipe.__call__).parameters


class PipelineSession:
    def __init__(self, case: dict, on_step: Callable[[int, int | None, float], None]) -> None:
        self.case = case
        self._on_step = on_step
        self.pipe: Any = None
        self.recorder: PhaseRecorder | None = None

    def load(self) -> dict[str, Any]:
        spec = ModelSpec.from_json(self.case["model"])
        build_s = 0.0
        if spec.builtin:
            started = time.perf_counter()
            path, built = aside.builtin_model(spec.name)
            build_s = time.perf_counter() - started if built else 0.0
        else:
            path = spec.path
        loaders.import_modules(self.case)  # outside the timed load
        # Before the pipeline takes its memory: a child may measure it (on a 6 GB card, room).
        peak = self._gemm_peak()

        vram = loaders.cap_vram() if self.case.get("device") == "cuda" else None
        audit.reset_peak_rss()
        started = time.perf_counter()
        pipe, load_proof = loaders.load(path, self.case)
        load_s = time.perf_counter() - started
        pipe, proof = transforms.apply(self.case.get("transforms", ()), pipe, self.case)
        proof = {"load": load_proof, **proof}
        if vram:
            proof["vram_cap"] = vram
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.weights_sha256 = weight_digest(path)
        self.recorder = PhaseRecorder(pipe, on_step=self._on_step)
        in_force = audit.worker_audit()
        if "openvino" in load_proof:
            in_force["openvino"] = load_proof["openvino"]  # what `sdperf doctor` checks too
        return {
            "roofline": self._roofline(path, peak),
            "model_path": str(path),
            "pipeline_class": type(pipe).__name__,
            "components": sorted(k for k, v in getattr(pipe, "components", {}).items() if v is not None),
            "weights_sha256": self.weights_sha256,
            "build_s": build_s,
            "load_s": load_s,
            "peak_rss_load_bytes": audit.peak_rss_bytes(),
            "instrumented": list(self.recorder.instrumented),
            "transform_proof": proof,
            "audit": in_force,
        }

    def _gemm_peak(self) -> dict[str, Any]:
        """The host's GEMM peak for this case's dtype, device and cores, or the error that stopped it."""
        from sdperf.models.store import cache_root
        from sdperf.worker import roofline

        try:
            return aside.gemm_peak(roofline.compute_dtype(self.case), self.case.get("device", "cpu"),
                                   self.case.get("cores", 1), cache_root())
        except Exception as error:  # noqa: BLE001 - said in the results, never hidden
            return {"error": f"{type(error).__name__}: {error}"}

    def _roofline(self, path, peak: dict[str, Any]) -> dict[str, Any]:
        """The denoiser's FLOPs per call for this workload with the host's GEMM peak (outside any timing).
        A failure is reported, not raised: the case's timing does not depend on it."""
        from sdperf.models.store import cache_root, pipeline_class_of
        from sdperf.worker import roofline

        if "error" in peak:
            return peak
        try:
            guidance = self.case["workload"].get("guidance")
            if guidance is None:  # the pipeline's default, as the call will use it
                parameter = accepted_arguments(self.pipe).get("guidance_scale")
                guidance = parameter.default if parameter is not None else None
            flops, flops_cached = roofline.cached_denoiser_flops(
                path, pipeline_class_of(ModelSpec(name=path.name, path=path)), self.case["workload"],
                guidance, with_t5="text_encoder_3" not in self.case.get("drop_components", ()), cache=cache_root(),
            )
        except Exception as error:  # noqa: BLE001 - said in the results, never hidden
            return {"error": f"{type(error).__name__}: {error}"}
        return {"flops_per_denoiser_call": flops, "flops_cached": flops_cached, **peak}

    def _call_arguments(self) -> dict[str, Any]:
        import torch

        workload = self.case["workload"]
        accepted = accepted_arguments(self.pipe)
        wanted = {
            "prompt": workload["prompt"],
            "prompt_2": workload.get("prompt_2"),
            "prompt_3": workload.get("prompt_3"),
            "negative_prompt": workload.get("negative_prompt"),
            "height": workload["height"],
            "width": workload["width"],
            "num_inference_steps": workload["steps"],
            "guidance_scale": workload.get("guidance"),
        }
        arguments = {name: value for name, value in wanted.items() if value is not None}
        refused = sorted(name for name in arguments if name not in accepted)
        if refused:
            raise WorkloadError(
                f"{type(self.pipe).__name__} takes no {', '.join(refused)}; "
                "remove them from the workload or use a pipeline that has them"
            )
        generator = torch.Generator(workload.get("generator_device", "cpu")).manual_seed(workload["seed"])
        arguments.update(generator=generator, output_type="np")
        if "callback_on_step_end" in accepted:
            arguments["callback_on_step_end"] = self.recorder.step_callback
        return arguments

    def generation_settings(self, packages: dict[str, str | None]):
        """Everything needed to regenerate the image, for its PNG metadata."""
        from sdperf import __version__
        from sdperf.common.generation_settings import GenerationSettings

        workload = self.case["workload"]
        guidance = workload.get("guidance")
        if guidance is None:
            # Left to the pipeline's default: record the value the call really used.
            guidance = getattr(self.pipe, "guidance_scale", None)
        return GenerationSettings(
            prompt=workload["prompt"],
            prompt_2=workload.get("prompt_2"),
            prompt_3=workload.get("prompt_3"),
            negative_prompt=workload.get("negative_prompt"),
            steps=workload["steps"],
            width=workload["width"],
            height=workload["height"],
            seed=workload["seed"],
            guidance=None if guidance is None else float(guidance),
            scheduler=type(self.pipe.scheduler).__name__,
            model=self.case["model"]["name"],
            model_sha256=self.weights_sha256,
            recipe=self.case["recipe"],
            packages={name: version for name, version in packages.items() if version},
            suite_version=__version__,
        )

    def save_png(self, images, path: str) -> None:
        import numpy as np

        from sdperf.common.pngmeta import write_png

        # The same float-to-8-bit conversion diffusers uses for output_type="pil".
        pixels = (np.clip(images[0], 0, 1) * 255).round().astype("uint8")
        write_png(path, pixels, self.generation_settings(package_versions()))

    def generate(self, save_png: str | None = None) -> dict[str, Any]:
        arguments = self._call_arguments()
        rss_scoped = audit.reset_peak_rss()
        audit.reset_cuda_peaks()
        self.recorder.reset()
        started = time.perf_counter()
        output = self.pipe(**arguments)
        wall_s = time.perf_counter() - started
        images = output.images
        shape = list(getattr(images, "shape", ()))
        workload = self.case["workload"]
        if len(shape) == 4 and shape[1:3] != [workload["height"], workload["width"]]:
            # A statically shaped OpenVINO pipeline asked for another size only warns: check it.
            raise WorkloadError(
                f"the pipeline returned {shape[2]}x{shape[1]} images, the workload asks for "
                f"{workload['width']}x{workload['height']}; a static shape was compiled for another size"
            )
        result = self.recorder.timings.summary(wall_s)
        result.update(
            image_sha256=image_digest(images),
            image_shape=shape,
            peak_rss_bytes=audit.peak_rss_bytes(),
            peak_rss_scope="call" if rss_scoped else "process",
            **audit.cuda_peaks(),
        )
        self.last_images = images
        if save_png:
            self.save_png(images, save_png)
            result["image_path"] = save_png
        return result

    def save_last(self, path: str) -> dict[str, Any]:
        if getattr(self, "last_images", None) is None:
            raise RuntimeError("save_image before any generate")
        self.save_png(self.last_images, path)
        return {"image_path": path}

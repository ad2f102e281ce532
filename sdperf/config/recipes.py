"""Named optimisation recipes: one registry entry each.

An entry says which profiles it belongs to, what the host needs for it to run
(`Needs`, checked before a worker starts: see `sdperf.host.capabilities`), how the
worker process must be started (environment, preloaded libraries, core
pinning), how the worker loads the pipeline and which transforms it applies.
The loaders and transforms live in the worker (`sdperf.worker`), so this module
stays import-light for the pytest process. Adding a recipe is adding one entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIDELITY_CLASSES = ("bit-exact", "close", "changes-image")
LOADERS = ("diffusers", "openvino", "openvino_static")
DEVICES = ("cpu", "cuda")

# Recipe environment values may name "{cores}" (the physical cores the suite may use,
# or the board's for a Pi profile) and "{cache}" (sdperf's cache folder).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# Allocator libraries a recipe may preload, by the name the worker's audit reports.
ALLOCATORS = {"libjemalloc.so.2": "jemalloc", "libtcmalloc_minimal.so.4": "tcmalloc"}

# Spellings of OpenVINO's INFERENCE_PRECISION_HINT that mean full precision.
FP32_HINTS = frozenset({"f32", "fp32", "float32"})

# The Xeon report's jemalloc settings, verbatim.
XEON_MALLOC_CONF = "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:60000,muzzy_decay_ms:60000"


@dataclass(frozen=True)
class Needs:
    """What must hold on the host; an unmet need skips the case with its reason."""

    packages: tuple[str, ...] = ()  # installed distributions (importlib.metadata names)
    libraries: tuple[str, ...] = ()  # shared libraries by soname, from Debian packages
    any_command: tuple[str, ...] = ()  # at least one of these executables on PATH
    cpu_flags_any: tuple[str, ...] = ()  # at least one of these /proc/cpuinfo flags
    cuda: bool = False  # an NVIDIA GPU and a CUDA build of torch
    python_env: str | None = None  # a dedicated environment (`sdperf env create NAME`)


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    profiles: tuple[str, ...]
    needs: Needs = field(default_factory=Needs)
    # Set (str) or removed (None) in the worker's environment before it starts.
    env: Mapping[str, str | None] = field(default_factory=dict)
    preload: tuple[str, ...] = ()  # sonames put in LD_PRELOAD, proven mapped in the worker
    pin_cores: bool = False  # numactl -C (or taskset -c) over the first {cores} CPUs
    loader: str = "diffusers"
    load_dtype: str | None = None  # torch dtype name the weights load in ("float16")
    drop_components: tuple[str, ...] = ()  # loaded as None (SD3 without T5)
    quantize: Mapping[str, str] = field(default_factory=dict)  # component -> scheme ("int8")
    device: str = "cpu"
    transforms: tuple[str, ...] = ()
    # What the image may do against the profile's control image (fp32 on CPUs), and the PSNR floor for
    # "close" and "changes-image", with the measurement that justified it.
    fidelity: str = "bit-exact"
    min_psnr_db: float | None = None
    fidelity_evidence: str = ""

    @property
    def compiles(self) -> bool:
        """The first call compiles (OpenVINO, torch.compile): its extra time is compilation."""
        return self.loader != "diffusers" or "torch_compile" in self.transforms

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITY_CLASSES:
            raise ValueError(f"recipe {self.name!r}: fidelity {self.fidelity!r} is not one of {FIDELITY_CLASSES}")
        if self.fidelity != "bit-exact" and (self.min_psnr_db is None or not self.fidelity_evidence):
            raise ValueError(
                f"recipe {self.name!r}: fidelity {self.fidelity!r} needs min_psnr_db and the fidelity_evidence behind it"
            )
        if self.loader not in LOADERS:
            raise ValueError(f"recipe {self.name!r}: loader {self.loader!r} is not one of {LOADERS}")
        if self.device not in DEVICES:
            raise ValueError(f"recipe {self.name!r}: device {self.device!r} is not one of {DEVICES}")
        unknown = [soname for soname in self.preload if soname not in ALLOCATORS]
        if unknown:
            raise ValueError(f"recipe {self.name!r}: preload {unknown} is not one of {sorted(ALLOCATORS)}")
        if self.device == "cuda" and not self.needs.cuda:
            raise ValueError(f"recipe {self.name!r}: device 'cuda' needs Needs(cuda=True)")


_PI = ("pi4", "pi5")
_ALL_CPU = ("cpu", "pi4", "pi5", "sapphire_rapids")
_X86_OR_ARM = ("cpu", "sapphire_rapids")
_OPENVINO = Needs(packages=("openvino", "optimum-intel"))
_CUDA = Needs(cuda=True)
_NO_THREAD_VARIABLES = {name: None for name in THREAD_VARIABLES}
# Thread counts change the order of floating-point sums, so images may differ in the last bits.
_THREADS_FIDELITY = {
    "fidelity": "close",
    "min_psnr_db": 40.0,
    "fidelity_evidence": (
        "a thread count changes the order of float sums, not the computation. tiny-sd15, cpu built-in "
        "workload, 2-vCPU Ice Lake, 2026-11-22: OMP_NUM_THREADS=1 gave 89.0 dB against fp32's 2 threads; "
        "the 2-thread recipes were bit-exact. An unrelated image scores 9.3 dB"
    ),
}
# Measured on a GPU (NVIDIA H200, torch 2.11 CUDA 13, tiny-sd3 at 256x256, 2026-11-30; tools/gpu_profile_run.sh
# tiny): every offload recipe drew the very image cuda_fp16 draws. Moving weights between devices changes
# where a layer runs, not what it computes.
_OFFLOAD_FIDELITY = {
    "fidelity": "bit-exact",
    "fidelity_evidence": (
        "offloading moves weights, not arithmetic: on an H200 (tiny-sd3, 256x256, 2026-11-30) model, sequential, "
        "block and leaf group offload, with and without streams, were bit-exact against cuda_fp16"
    ),
}
_VAE_TILING_FIDELITY = {
    "fidelity": "close",
    "min_psnr_db": 25.0,
    "fidelity_evidence": (
        "bit-exact against cuda_fp16 on an H200 at 256x256 (tiny-sd3, 2026-11-30), where the image is smaller "
        "than one tile; at 1024x1024 tiles are decoded apart and blended, so the image may differ: the floor "
        "is the correctness issue's default for 'close' until a real-weights run measures it"
    ),
}


def _gpu_recipe(name: str, summary: str, *transforms: str, fidelity: Mapping[str, Any] = _OFFLOAD_FIDELITY) -> Recipe:
    """An fp16 recipe of the cuda_lowvram profile."""
    return Recipe(
        name=name, summary=summary, profiles=("cuda_lowvram",), needs=_CUDA, load_dtype="float16", device="cuda",
        transforms=transforms, **fidelity,
    )


REGISTRY: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="fp32",
            summary="diffusers out of the box: fp32 weights, the model's own scheduler, profile thread settings",
            profiles=_ALL_CPU,
        ),
        # ---------------------------------------------------------------- threads
        Recipe(
            name="threads_unset",
            summary="no thread variables at all: each library picks its own pools (the Pi report's 32-minute start)",
            profiles=(*_PI, "cpu"),
            env=_NO_THREAD_VARIABLES,
            **_THREADS_FIDELITY,
        ),
        Recipe(
            name="omp1",
            summary="OMP_NUM_THREADS=1 only (OpenBLAS left to its own pool)",
            profiles=(*_PI, "cpu"),
            env={**_NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "1"},
            **_THREADS_FIDELITY,
        ),
        Recipe(
            name="omp1_openblas4",
            summary="OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=4",
            profiles=(*_PI, "cpu"),
            env={**_NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "4"},
            **_THREADS_FIDELITY,
        ),
        Recipe(
            name="omp4_openblas1",
            summary="OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=1: the Pi 5 report's winner (14 min 11 s)",
            profiles=_PI,
            env={**_NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"},
            **_THREADS_FIDELITY,
        ),
        Recipe(
            name="omp_cores_openblas1",
            summary="OMP_NUM_THREADS=<physical cores> OPENBLAS_NUM_THREADS=1: the Pi 5 winner on any CPU",
            profiles=("cpu",),
            env={**_NO_THREAD_VARIABLES, "OMP_NUM_THREADS": "{cores}", "OPENBLAS_NUM_THREADS": "1"},
            **_THREADS_FIDELITY,
        ),
        # ---------------------------------------------------------------- CPU
        Recipe(
            name="openvino",
            summary="OpenVINO through optimum-intel, dynamic shapes, INFERENCE_PRECISION_HINT=f32",
            profiles=_X86_OR_ARM,
            needs=_OPENVINO,
            loader="openvino",
            fidelity="close",
            min_psnr_db=35.0,
            fidelity_evidence=(
                "tiny-sd15, cpu built-in workload, 2026-11-22: 92.0 dB against torch fp32 (f32 hint). The floor "
                "leaves room for real weights; reduced precision (bf16 on AMX) is caught by the hint check"
            ),
        ),
        Recipe(
            name="openvino_static",
            summary="OpenVINO reshaped to the workload's batch and size, then compiled (the Xeon report's 4.7 s)",
            profiles=_X86_OR_ARM,
            needs=_OPENVINO,
            loader="openvino_static",
            fidelity="close",
            min_psnr_db=35.0,
            fidelity_evidence="tiny-sd15, cpu built-in workload, 2026-11-22: 95.0 dB against torch fp32 (f32 hint)",
        ),
        Recipe(
            name="jemalloc",
            summary="jemalloc through LD_PRELOAD with the Xeon report's MALLOC_CONF",
            profiles=_X86_OR_ARM,
            needs=Needs(libraries=("libjemalloc.so.2",)),
            preload=("libjemalloc.so.2",),
            env={"MALLOC_CONF": XEON_MALLOC_CONF},
        ),
        Recipe(
            name="tcmalloc",
            summary="tcmalloc (gperftools, minimal) through LD_PRELOAD",
            profiles=_X86_OR_ARM,
            needs=Needs(libraries=("libtcmalloc_minimal.so.4",)),
            preload=("libtcmalloc_minimal.so.4",),
        ),
        Recipe(
            name="pin_cores",
            summary="OMP_NUM_THREADS=<physical cores> and the worker pinned to that many CPUs (numactl -C, else taskset -c)",
            profiles=_X86_OR_ARM,
            needs=Needs(any_command=("numactl", "taskset")),
            env={"OMP_NUM_THREADS": "{cores}"},
            pin_cores=True,
            **_THREADS_FIDELITY,
        ),
        Recipe(
            name="bf16",
            summary="torch-native bf16: CPU autocast to bfloat16 and channels_last UNet and VAE (IPEX's upstream replacement)",
            profiles=_X86_OR_ARM,
            transforms=("bf16_autocast",),
            fidelity="close",
            min_psnr_db=25.0,
            fidelity_evidence=(
                "tiny-sd15, cpu built-in workload, 2026-11-22: 45.1 dB against fp32. bf16 keeps 8 bits of "
                "mantissa, so real weights over more steps drift further: 25 dB still rejects another image (9.3 dB)"
            ),
        ),
        Recipe(
            name="torch_compile",
            summary="torch.compile (inductor) of the UNet, persistent compile cache; compile time is the first call",
            profiles=_X86_OR_ARM,
            needs=Needs(any_command=("c++", "g++", "clang++")),
            env={"TORCHINDUCTOR_CACHE_DIR": "{cache}/inductor"},
            transforms=("torch_compile",),
            fidelity="close",
            min_psnr_db=40.0,
            fidelity_evidence="tiny-sd15, cpu built-in workload, 2026-11-22: 95.0 dB against eager fp32 (fused kernels)",
        ),
        Recipe(
            name="dpm_solver",
            summary="DPMSolverMultistepScheduler in place of the model's scheduler (the Xeon report's last step)",
            profiles=_X86_OR_ARM,
            transforms=("dpm_solver",),
            fidelity="changes-image",
            min_psnr_db=20.0,
            fidelity_evidence=(
                "tiny-sd15, cpu built-in workload (128x128, 20 steps, seed 0), 2026-11-21: 30.0 dB against "
                "PNDM fp32; an unrelated image (seed 1 or 2) scores 9.3-9.4 dB, so 20 dB separates a "
                "different scheduler from a different image"
            ),
        ),
        Recipe(
            name="xeon_stack",
            summary=(
                "the Xeon report's cumulative stack: jemalloc (its MALLOC_CONF), OMP_NUM_THREADS=<physical cores>, "
                "pinned cores, bf16 autocast + channels_last, DPMSolver (GNU OpenMP stays: the torch wheel's own)"
            ),
            profiles=_X86_OR_ARM,
            needs=Needs(libraries=("libjemalloc.so.2",), any_command=("numactl", "taskset")),
            preload=("libjemalloc.so.2",),
            env={"MALLOC_CONF": XEON_MALLOC_CONF, "OMP_NUM_THREADS": "{cores}"},
            pin_cores=True,
            transforms=("bf16_autocast", "dpm_solver"),
            fidelity="changes-image",
            min_psnr_db=20.0,
            fidelity_evidence=(
                "tiny-sd15, cpu built-in workload, 2026-11-22: 29.8 dB against PNDM fp32 (DPM-Solver alone: 30.0 dB)"
            ),
        ),
        Recipe(
            name="ipex_bf16",
            summary=(
                "IPEX 2.8 ipex.optimize(dtype=bfloat16) on UNet and VAE, channels_last, CPU bf16 autocast (text encoder "
                "under autocast only); runs in its own environment (torch 2.8.*, intel-extension-for-pytorch 2.8.*)"
            ),
            profiles=_X86_OR_ARM,
            needs=Needs(python_env="ipex", cpu_flags_any=("avx2",)),
            transforms=("ipex_bf16",),
            fidelity="close",
            min_psnr_db=25.0,
            fidelity_evidence=(
                "tiny-sd15, IPEX 2.8.0 with torch 2.8.0, Ice Lake, 2026-11-22: UNet and VAE optimised give 45.4 and "
                "45.1 dB against fp32. The report also optimised the text encoder; here that gave 9.3 dB (an "
                "unrelated image), so the recipe leaves it to autocast"
            ),
        ),
        # ---------------------------------------------------------------- GPU
        _gpu_recipe("cuda_fp16", "fp16 weights, the whole pipeline on the GPU", "to_cuda"),
        _gpu_recipe(
            "model_cpu_offload",
            "fp16, enable_model_cpu_offload(): one whole model on the GPU at a time (the report's 144 s)",
            "model_cpu_offload",
        ),
        _gpu_recipe(
            "sequential_cpu_offload",
            "fp16, enable_sequential_cpu_offload(): leaf modules moved to the GPU as they run",
            "sequential_cpu_offload",
        ),
        *(
            _gpu_recipe(
                f"group_offload_{level}{'_stream' if stream else ''}",
                f"fp16, enable_group_offload({level}_level{', use_stream=True' if stream else ''}): "
                "groups of layers moved to the GPU as they run",
                f"group_offload_{level}{'_stream' if stream else ''}",
            )
            for level in ("block", "leaf")
            for stream in (False, True)
        ),
        _gpu_recipe(
            "vae_tiling", "fp16, model CPU offload and VAE tiling (pipe.vae.enable_tiling())", "model_cpu_offload", "vae_tiling",
            fidelity=_VAE_TILING_FIDELITY,
        ),
        Recipe(
            name="drop_t5",
            summary="fp16, SD3 without T5 (text_encoder_3=None, tokenizer_3=None), whole pipeline on the GPU",
            profiles=("cuda_lowvram",),
            drop_components=("text_encoder_3", "tokenizer_3"),
            transforms=("to_cuda",),
            load_dtype="float16",
            device="cuda",
            needs=_CUDA,
            fidelity="changes-image",
            min_psnr_db=10.0,
            fidelity_evidence=(
                "no T5 conditioning changes the image by design; on an H200 (tiny-sd3, 256x256, 2026-11-30) "
                "20.8 dB against cuda_fp16; the floor only tells a changed image from a broken one"
            ),
        ),
        Recipe(
            name="t5_8bit",
            summary="fp16, T5 with int8 weights (torchao int8 weight-only), model CPU offload",
            profiles=("cuda_lowvram",),
            needs=Needs(cuda=True, packages=("torchao",)),
            quantize={"text_encoder_3": "int8"},
            transforms=("model_cpu_offload",),
            load_dtype="float16",
            device="cuda",
            fidelity="close",
            min_psnr_db=20.0,
            fidelity_evidence=(
                "int8 T5 weights change the conditioning slightly: on an H200 (tiny-sd3, 256x256, 2026-11-30) "
                "53.9 dB against cuda_fp16; the tiny T5 has 2 layers, T5-XXL 24, so the floor stays wide until a "
                "real-weights run measures it"
            ),
        ),
        # ---------------------------------------------------------------- test only
        Recipe(
            name="testonly_slowdown",
            summary=(
                "TEST ONLY, never a default: fp32 made slower on purpose (sleeps a fraction of each call's time, "
                "SDPERF_TESTONLY_SLOWDOWN, default 0.10) to measure how often verdicts catch a known regression"
            ),
            profiles=(*_ALL_CPU, "cuda_lowvram"),
            transforms=("testonly_slowdown",),
        ),
    )
}


def user_recipe_names() -> list[str]:
    """The recipes a user picks from: test-only ones run when named, but are never offered."""
    return sorted(name for name in REGISTRY if not name.startswith("testonly_"))


def get_recipe(name: str, source: str) -> Recipe:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"{source}: recipe {name!r} is unknown; known: {', '.join(user_recipe_names())}") from None

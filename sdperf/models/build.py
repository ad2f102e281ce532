"""Builds the built-in models: seeded pipelines with the architecture of SD 1.5 and SD3, tiny
or full size.

Each model is a recipe (plain data, `sdperf.models.catalog`); the build turns it into a diffusers folder
saved with safetensors, which then loads through the same `from_pretrained`
path as real weights. A full-size model is made without ever holding the library's own
initial values: modules are made with empty parameters and each is filled once, in
parallel, in the recipe's dtype (SD3 Medium's 7.7 B parameters fit in fp16).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sdperf.models import tokenizers as tok
from sdperf.models.catalog import PUBLISHED_PARAMETERS, RECIPES, recipe_document
from sdperf.models.store import READY_MARKER, builtin_folder
from sdperf.models.weights import seeded_values


def fill_seeded(module, seed: int) -> None:
    """Overwrite every parameter of a torch module with its seeded values (buffers are left alone)."""
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters(remove_duplicate=False):
            values = seeded_values(name, tuple(param.shape), seed)
            param.copy_(torch.from_numpy(values).to(param.dtype))


def materialize_seeded(module, seed: int, scheme: int, dtype_name: str) -> None:
    """Give every parameter of `module` (made with empty, meta-device parameters) its seeded
    values in `dtype_name`, and cast its floating buffers to that dtype. A parameter held under
    several names gets one tensor, valued by its first name; ties the library declares are
    made again (`tie_weights`)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    dtype = getattr(torch, dtype_name)
    holders: dict[int, list[str]] = {}
    params = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        holders.setdefault(id(param), []).append(name)
        params.setdefault(id(param), param)

    def filled(key: int):
        first = holders[key][0]
        values = seeded_values(first, tuple(params[key].shape), seed, scheme)
        return key, torch.nn.Parameter(torch.from_numpy(values).to(dtype), requires_grad=False)

    # NumPy's generator and arithmetic release the GIL: one thread per core fills in parallel.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for key, param in pool.map(filled, list(holders)):
            for name in holders[key]:
                owner_name, _, leaf = name.rpartition(".")
                setattr(module.get_submodule(owner_name), leaf, param)
    # Ties made while the parameters were empty were lost when accelerate re-wrapped them
    # (T5's encoder.embed_tokens and shared): make them again, now on the real tensors.
    if hasattr(module, "tie_weights"):
        module.tie_weights()
    for owner in module.modules():
        for leaf, buffer in owner.named_buffers(recurse=False):
            if buffer is not None and buffer.is_floating_point():
                setattr(owner, leaf, buffer.to(dtype))


def _seeded(make, recipe: dict[str, Any], seed_offset: int = 0):
    """The module `make()` returns, with its recipe's seeded weights."""
    seed = recipe["seed"] + seed_offset
    if recipe["weights_scheme"] == 1:  # tiny: made whole, then overwritten (its goldens rely on it)
        module = make()
        fill_seeded(module, seed)
        return module.eval()
    from accelerate import init_empty_weights

    # Empty parameters, real buffers (position ids, SD3's positional embedding).
    with init_empty_weights(include_buffers=False):
        module = make()
    materialize_seeded(module, seed, recipe["weights_scheme"], recipe["weights_dtype"])
    return module.eval()


def _clip_tokenizer(workdir: Path, max_length: int = 77):
    files = workdir / "clip-tokenizer-source"
    tok.write_clip_tokenizer_files(files)
    return tok.load_clip_tokenizer(files, max_length)


# The second CLIP gets its own seed stream so the two encoders differ.
_SEED_OFFSETS = {"text_encoder_2": 1}


def network_makers(recipe: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The recipe's neural networks by pipeline component, each as a function that makes it
    (with the library's own initial values, or empty under `init_empty_weights`)."""
    from diffusers import AutoencoderKL

    if recipe["pipeline"] == "StableDiffusionPipeline":
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        return {
            "vae": lambda: AutoencoderKL.from_config(recipe["vae"]),
            "text_encoder": lambda: CLIPTextModel(CLIPTextConfig(**recipe["text_encoder"])),
            "unet": lambda: UNet2DConditionModel.from_config(recipe["unet"]),
        }
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    return {
        "transformer": lambda: SD3Transformer2DModel.from_config(recipe["transformer"]),
        "vae": lambda: AutoencoderKL.from_config(recipe["vae"]),
        "text_encoder": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**recipe["text_encoder"])),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**recipe["text_encoder_2"])),
        "text_encoder_3": lambda: T5EncoderModel(T5Config(**recipe["text_encoder_3"])),
    }


def _assemble(recipe: dict[str, Any], networks: dict[str, Any], workdir: Path):
    """The pipeline of seeded `networks`, built-in tokenizers and the recipe's scheduler."""
    if recipe["pipeline"] == "StableDiffusionPipeline":
        from diffusers import PNDMScheduler, StableDiffusionPipeline

        return StableDiffusionPipeline(
            **networks,
            tokenizer=_clip_tokenizer(workdir),
            scheduler=PNDMScheduler.from_config(recipe["scheduler"]),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    return StableDiffusion3Pipeline(
        **networks,
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(recipe["scheduler"]),
        tokenizer=_clip_tokenizer(workdir),
        tokenizer_2=_clip_tokenizer(workdir),
        tokenizer_3=tok.build_t5_tokenizer(recipe["tokenizer_3_max_length"]),
    )


def parameter_counts(name: str) -> dict[str, int]:
    """Parameters per network of built-in model `name` (tied ones once), counted on the meta
    device: no weights are made, so it takes seconds even for SD3 Medium. Also counts the
    submodules the catalog has published counts for ("vae.decoder")."""
    import torch

    recipe = RECIPES[name]
    counts = {}
    for component, make in network_makers(recipe).items():
        with torch.device("meta"):
            network = make()
        counts[component] = sum(p.numel() for p in network.parameters())
        for path in PUBLISHED_PARAMETERS.get(name, {}):
            owner, _, sub = path.partition(".")
            if owner == component and sub:
                counts[path] = sum(p.numel() for p in network.get_submodule(sub).parameters())
    return counts


# Read when each library first configures its logger: set before the import, they also
# silence what is logged while it imports (diffusers' "Multiple distributions found ...").
_QUIET_ENVIRONMENT = {"DIFFUSERS_VERBOSITY": "error", "TRANSFORMERS_VERBOSITY": "error"}


def _put_back_environment(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within: diffusers, transformers and huggingface_hub log errors only and draw no progress
    bars, and no Python warning is shown (sdperf's own lines are prints). All put back after."""
    with ExitStack() as put_back:  # runs its callbacks last registered, first run
        for key in _QUIET_ENVIRONMENT:
            put_back.callback(_put_back_environment, key, os.environ.get(key))
        os.environ.update(_QUIET_ENVIRONMENT)
        put_back.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        import diffusers.utils.logging as diffusers_logging
        import huggingface_hub.utils as hub_utils
        import transformers.utils.logging as transformers_logging

        # Registered before transformers', so run after it: its switch flips huggingface_hub's too.
        put_back.callback(hub_utils.disable_progress_bars if hub_utils.are_progress_bars_disabled()
                          else hub_utils.enable_progress_bars)
        for library in (diffusers_logging, transformers_logging):
            put_back.callback(library.set_verbosity, library.get_verbosity())
            put_back.callback(library.enable_progress_bar if library.is_progress_bar_enabled()
                              else library.disable_progress_bar)
            library.set_verbosity_error()
            library.disable_progress_bar()
        hub_utils.disable_progress_bars()
        yield


def build(name: str, destination: Path) -> None:
    """Build built-in model `name` and save it as a diffusers folder at `destination`."""
    import torch

    recipe = RECIPES[name]
    # Library constructors draw from the global RNG before we overwrite the values;
    # seeding keeps even that invisible step repeatable.
    torch.manual_seed(recipe["seed"])
    networks = {
        component: _seeded(make, recipe, _SEED_OFFSETS.get(component, 0))
        for component, make in network_makers(recipe).items()
    }
    with tempfile.TemporaryDirectory(prefix="sdperf-tok-") as workdir:
        pipe = _assemble(recipe, networks, Path(workdir))
        pipe.save_pretrained(destination, safe_serialization=True)


def ensure_builtin(name: str, quiet: bool = False) -> tuple[Path, bool]:
    """Path of built-in model `name`, building it first if missing (`quiet`: within
    `quiet_libraries`). Returns (path, built_now)."""
    from filelock import FileLock

    folder = builtin_folder(name)
    if (folder / READY_MARKER).is_file():
        return folder, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Parallel workers may ask at once: one builds, the others wait and reuse it.
    with FileLock(str(folder) + ".lock"):
        if (folder / READY_MARKER).is_file():
            return folder, False
        staging = folder.with_name(folder.name + f".partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        with quiet_libraries() if quiet else nullcontext():
            build(name, staging)
        (staging / READY_MARKER).write_text(json.dumps(recipe_document(name), sort_keys=True), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        # Rename is atomic: a killed build never leaves a folder that looks complete.
        os.replace(staging, folder)
    return folder, True

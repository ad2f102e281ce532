"""Builds the built-in models (tiny seeded pipelines with the architecture of SD 1.5 and SD3).

Each model is a recipe (plain data, `sdperf.models.catalog`); the build turns it into a diffusers folder
saved with safetensors, which then loads through the same `from_pretrained`
path as real weights. Same shape of work as the real model, a fraction of the cost.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sdperf.models import tokenizers as tok
from sdperf.models.catalog import RECIPES, recipe_document
from sdperf.models.store import READY_MARKER, builtin_folder
from sdperf.models.weights import seeded_values


def fill_seeded(module, seed: int) -> None:
    """Overwrite every parameter of a torch module with its seeded values (buffers are left alone)."""
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters(remove_duplicate=False):
            values = seeded_values(name, tuple(param.shape), seed)
            param.copy_(torch.from_numpy(values).to(param.dtype))


def _seeded(module, seed: int):
    fill_seeded(module, seed)
    return module.eval()


def _clip_tokenizer(workdir: Path, max_length: int = 77):
    files = workdir / "clip-tokenizer-source"
    tok.write_clip_tokenizer_files(files)
    return tok.load_clip_tokenizer(files, max_length)


def _build_sd15(recipe: dict[str, Any], workdir: Path):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    seed = recipe["seed"]
    return StableDiffusionPipeline(
        vae=_seeded(AutoencoderKL(**recipe["vae"]), seed),
        text_encoder=_seeded(CLIPTextModel(CLIPTextConfig(**recipe["text_encoder"])), seed),
        tokenizer=_clip_tokenizer(workdir),
        unet=_seeded(UNet2DConditionModel(**recipe["unet"]), seed),
        scheduler=PNDMScheduler(**recipe["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sd3(recipe: dict[str, Any], workdir: Path):
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    seed = recipe["seed"]
    return StableDiffusion3Pipeline(
        transformer=_seeded(SD3Transformer2DModel(**recipe["transformer"]), seed),
        scheduler=FlowMatchEulerDiscreteScheduler(**recipe["scheduler"]),
        vae=_seeded(AutoencoderKL(**recipe["vae"]), seed),
        text_encoder=_seeded(CLIPTextModelWithProjection(CLIPTextConfig(**recipe["text_encoder"])), seed),
        tokenizer=_clip_tokenizer(workdir),
        # The second CLIP gets its own seed stream so the two encoders differ.
        text_encoder_2=_seeded(CLIPTextModelWithProjection(CLIPTextConfig(**recipe["text_encoder_2"])), seed + 1),
        tokenizer_2=_clip_tokenizer(workdir),
        text_encoder_3=_seeded(T5EncoderModel(T5Config(**recipe["text_encoder_3"])), seed),
        tokenizer_3=tok.build_t5_tokenizer(recipe["tokenizer_3_max_length"]),
    )


_BUILDERS = {"StableDiffusionPipeline": _build_sd15, "StableDiffusion3Pipeline": _build_sd3}


def build(name: str, destination: Path) -> None:
    """Build built-in model `name` and save it as a diffusers folder at `destination`."""
    import torch

    recipe = RECIPES[name]
    # Library constructors draw from the global RNG before we overwrite the values;
    # seeding keeps even that invisible step repeatable.
    torch.manual_seed(recipe["seed"])
    with tempfile.TemporaryDirectory(prefix="sdperf-tok-") as workdir:
        pipe = _BUILDERS[recipe["pipeline"]](recipe, Path(workdir))
        pipe.save_pretrained(destination, safe_serialization=True)


def ensure_builtin(name: str) -> tuple[Path, bool]:
    """Path of built-in model `name`, building it first if missing. Returns (path, built_now)."""
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
        build(name, staging)
        (staging / READY_MARKER).write_text(json.dumps(recipe_document(name), sort_keys=True), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        # Rename is atomic: a killed build never leaves a folder that looks complete.
        os.replace(staging, folder)
    return folder, True

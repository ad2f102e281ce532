"""Tiny seeded pipelines with the architecture of SD 1.5 and SD3.

Each model is a recipe (plain data); the build turns it into a diffusers folder
saved with safetensors, which then loads through the same `from_pretrained`
path as real weights. Same shape of work as the real model, a fraction of the cost.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sdperf.models import tokenizers as tok
from sdperf.models.weights import SCHEME_VERSION, fill_seeded

# Bump when build code changes in a way the recipe data does not show.
BUILD_VERSION = 1

_CLIP = {
    "vocab_size": tok.CLIP_VOCAB_SIZE,
    "bos_token_id": tok.CLIP_BOS_ID,
    "eos_token_id": tok.CLIP_EOS_ID,
    "pad_token_id": tok.CLIP_EOS_ID,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-5,
    "hidden_act": "quick_gelu",
}

TINY_SD15: dict[str, Any] = {
    "pipeline": "StableDiffusionPipeline",
    "seed": 0,
    "unet": {
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    },
    # Four blocks: a VAE scale factor of 8, as in SD 1.5.
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "block_out_channels": [8, 16, 16, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "sample_size": 256,
        "scaling_factor": 0.18215,
    },
    "text_encoder": dict(_CLIP),
    # SD 1.5's scheduler settings.
    "scheduler": {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "skip_prk_steps": True,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    },
}

TINY_SD3: dict[str, Any] = {
    "pipeline": "StableDiffusion3Pipeline",
    "seed": 0,
    "transformer": {
        "sample_size": 32,
        "patch_size": 2,
        "in_channels": 4,
        "out_channels": 4,
        "num_layers": 2,
        "attention_head_dim": 8,
        "num_attention_heads": 4,
        "caption_projection_dim": 32,
        "joint_attention_dim": 64,
        "pooled_projection_dim": 64,
        "pos_embed_max_size": 96,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "block_out_channels": [8, 16, 16, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "sample_size": 256,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "shift_factor": 0.0609,
        "scaling_factor": 1.5035,
    },
    "text_encoder": dict(_CLIP, projection_dim=32, hidden_act="gelu"),
    "text_encoder_2": dict(_CLIP, projection_dim=32, hidden_act="gelu"),
    # Two CLIPs concatenate to 64 features, T5's width: same joint shape as SD3.
    "text_encoder_3": {
        "vocab_size": len(tok.t5_vocabulary()),
        "d_model": 64,
        "d_kv": 16,
        "d_ff": 128,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "feed_forward_proj": "gated-gelu",
        "pad_token_id": tok.T5_PAD_ID,
        "eos_token_id": tok.T5_EOS_ID,
        "decoder_start_token_id": tok.T5_PAD_ID,
    },
    "tokenizer_3_max_length": 256,
    "scheduler": {"num_train_timesteps": 1000, "shift": 3.0},
}

RECIPES: dict[str, dict[str, Any]] = {"tiny-sd15": TINY_SD15, "tiny-sd3": TINY_SD3}


def recipe_document(name: str) -> dict[str, Any]:
    """Everything the bytes of a built model depend on (hashed into its cache key)."""
    return {
        "name": name,
        "recipe": RECIPES[name],
        "weights_scheme": SCHEME_VERSION,
        "build_version": BUILD_VERSION,
    }


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

"""The built-in models as data: each a recipe (configs, seed) that the builder turns into
a diffusers folder. Light on imports: the pytest process reads it to know a model's pipeline.

Two sizes: the tiny models (the default: seconds an image, every profile anywhere) and the
full-size ones, built from the published configs in `published/` with synthetic weights of
the real shapes (latency and memory as with real weights; images mean nothing)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from sdperf.models import tokenizers as tok

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
    "weights_scheme": 1,
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
    "weights_scheme": 1,
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

PUBLISHED = Path(__file__).parent / "published"


@cache
def published_config(model: str, component: str) -> dict[str, Any]:
    """A component's config as the hub publishes it (`published/README.md` says where from)."""
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((PUBLISHED / model / component / name).read_text(encoding="utf-8"))


def _clip_published(model: str, component: str) -> dict[str, Any]:
    # The built-in byte-level tokenizer has its own special ids; the embedding keeps the
    # published vocabulary's rows (unused rows cost memory, as real ones do).
    ids = {"bos_token_id": tok.CLIP_BOS_ID, "eos_token_id": tok.CLIP_EOS_ID, "pad_token_id": tok.CLIP_EOS_ID}
    return {**published_config(model, component), **ids}


FULL_SD15: dict[str, Any] = {
    "pipeline": "StableDiffusionPipeline",
    "seed": 0,
    "weights_scheme": 2,
    "weights_dtype": "float32",  # as the published unet/vae/text_encoder files
    "unet": published_config("sd15", "unet"),
    "vae": published_config("sd15", "vae"),
    "text_encoder": _clip_published("sd15", "text_encoder"),
    "scheduler": published_config("sd15", "scheduler"),
}

FULL_SD3_MEDIUM: dict[str, Any] = {
    "pipeline": "StableDiffusion3Pipeline",
    "seed": 0,
    "weights_scheme": 2,
    "weights_dtype": "float16",  # as published: 4.2 GB transformer, 9.5 GB T5
    "transformer": published_config("sd3-medium", "transformer"),
    "vae": published_config("sd3-medium", "vae"),
    "text_encoder": _clip_published("sd3-medium", "text_encoder"),
    "text_encoder_2": _clip_published("sd3-medium", "text_encoder_2"),
    "text_encoder_3": published_config("sd3-medium", "text_encoder_3"),
    "tokenizer_3_max_length": 256,  # diffusers' default max_sequence_length
    "scheduler": published_config("sd3-medium", "scheduler"),
}

RECIPES: dict[str, dict[str, Any]] = {
    "tiny-sd15": TINY_SD15, "tiny-sd3": TINY_SD3, "sd15": FULL_SD15, "sd3-medium": FULL_SD3_MEDIUM,
}
TINY = ("tiny-sd15", "tiny-sd3")
FULL_SIZE = ("sd15", "sd3-medium")

# What each pipeline the profiles run cannot load without: diffusers 0.37's __init__ parameters
# less its _optional_components. Listed null, it fails too ("expected ... but only ... were passed").
PIPELINE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "StableDiffusionPipeline": ("vae", "text_encoder", "tokenizer", "unet", "scheduler"),
    "StableDiffusion3Pipeline": (
        "transformer", "scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
        "text_encoder_3", "tokenizer_3",
    ),
}


def builtins_of(pipeline: str) -> list[str]:
    """The built-in models of a pipeline class (what to run instead of a model of another one)."""
    return [name for name, recipe in RECIPES.items() if recipe["pipeline"] == pipeline]


# Published parameter counts per component (configs/README.md of the design notes:
# diffusers' num_parameters() docstring, the fast.ai forum's SD budget post, aitune's inspect
# output, KerasHub's SD3 preset). SD3's VAE has no published total: its decoder's is, and the
# whole is the KerasHub SD3 total less the other parts. "vae.decoder" counts a submodule.
PUBLISHED_PARAMETERS: dict[str, dict[str, int]] = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd3-medium": {
        "transformer": 2_028_328_000,
        "vae": 83_819_683,
        "vae.decoder": 49_545_475,
        "text_encoder": 123_650_304,
        "text_encoder_2": 694_659_840,
        "text_encoder_3": 4_762_310_656,
    },
}


def recipe_document(name: str) -> dict[str, Any]:
    """Everything the bytes of a built model depend on (hashed into its cache key)."""
    return {"name": name, "recipe": RECIPES[name], "build_version": BUILD_VERSION}

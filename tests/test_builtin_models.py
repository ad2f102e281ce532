"""Built-in models: pure-function weights, byte-identical builds, identical images across workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import builtin_model_path
from sdperf.models.weights import seeded_values


def test_weight_values_depend_only_on_name_shape_and_seed() -> None:
    first = seeded_values("unet.conv_in.weight", (8, 4, 3, 3), seed=0)
    assert (first == seeded_values("unet.conv_in.weight", (8, 4, 3, 3), seed=0)).all()
    assert not (first == seeded_values("unet.conv_in.weight", (8, 4, 3, 3), seed=1)).all()
    assert not (first == seeded_values("unet.conv_out.weight", (8, 4, 3, 3), seed=0)).all()


def test_norm_scales_start_near_one_and_biases_near_zero() -> None:
    scale = seeded_values("encoder.layer_norm.weight", (64,), seed=0)
    bias = seeded_values("encoder.layer_norm.bias", (64,), seed=0)
    assert abs(scale.mean() - 1.0) < 0.05 and abs(bias).max() <= 0.02


FILL_UNDER_GLOBAL_SEED = """
import sys, torch
from sdperf.models.build import fill_seeded
torch.manual_seed(int(sys.argv[1]))
layer = torch.nn.Linear(16, 8)
fill_seeded(layer, seed=0)
print(layer.weight.detach().numpy().tobytes().hex())
"""


def test_filling_ignores_the_global_torch_seed() -> None:
    def filled(global_seed: int) -> str:
        done = subprocess.run(
            [sys.executable, "-c", FILL_UNDER_GLOBAL_SEED, str(global_seed)],
            check=True, capture_output=True, text=True, timeout=120,
        )
        return done.stdout

    assert filled(1) == filled(2) != ""


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sd3"])
def test_two_builds_in_separate_processes_are_byte_identical(tmp_path: Path, name: str) -> None:
    # The cache's build (made by another process: a worker, or build-model) against a fresh one.
    cached = builtin_model_path(name)
    subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "build-model", name, "--out", str(tmp_path / "fresh")],
        check=True, capture_output=True, timeout=300,
    )
    files_a = sorted(p.relative_to(cached) for p in cached.rglob("*.safetensors"))
    files_b = sorted(p.relative_to(tmp_path / "fresh") for p in (tmp_path / "fresh").rglob("*.safetensors"))
    assert files_a == files_b and len(files_a) >= 3
    for relative in files_a:
        assert (cached / relative).read_bytes() == (tmp_path / "fresh" / relative).read_bytes(), relative


# A fixed seed's image, bitwise identical in one worker and across fresh workers, is proven for
# every cpu recipe by the determinism checks of the shared end-to-end run
# (test_correctness.py::test_every_cpu_recipe_is_checked_on_the_images_its_benchmark_drew); tiny-sd3's
# generation with its three text encoders by test_recipes_run.py's GPU code paths on a CPU.


def test_weight_digest_is_cached_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import os

    from sdperf.models.store import weight_digest

    monkeypatch.setenv("SDPERF_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"first")
    expected = hashlib.sha256(b"unet/diffusion_pytorch_model.safetensors" + b"first").hexdigest()
    assert weight_digest(tmp_path / "model") == expected
    assert len(list((tmp_path / "cache" / "digests").iterdir())) == 1
    assert weight_digest(tmp_path / "model") == expected  # served from the cache
    weights.write_bytes(b"second")
    os.utime(weights, ns=(1, 1))
    assert weight_digest(tmp_path / "model") == hashlib.sha256(
        b"unet/diffusion_pytorch_model.safetensors" + b"second"
    ).hexdigest()


def test_full_size_models_have_the_published_parameter_counts() -> None:
    # `sdperf models --json` counts on the meta device: no weights are made (CI builds none).
    from sdperf.models.catalog import PUBLISHED_PARAMETERS

    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "models", "--json"], check=True, capture_output=True, text=True, timeout=300,
    )
    counts = json.loads(done.stdout)
    assert set(counts) == {"tiny-sd15", "tiny-sd3", "sd15", "sd3-medium"}
    for model, published in PUBLISHED_PARAMETERS.items():
        assert {component: counts[model][component] for component in published} == published, model
    # Every network of each full-size model has its published count (SD3's VAE: its decoder's, and the whole).
    assert set(counts["sd15"]) == {"unet", "vae", "text_encoder"}
    assert set(counts["sd3-medium"]) - {"vae.decoder"} == {
        "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"
    }


def test_scheme_2_values_are_pinned_scaled_like_an_init_and_differ_by_name() -> None:
    import hashlib

    import numpy as np

    values = seeded_values("unet.conv_in.weight", (320, 4, 3, 3), seed=0, scheme=2)
    assert values.dtype == np.float32
    # Pinned: NumPy keeps PCG64's raw stream across releases; a change here would give
    # another model under the same cache key.
    assert hashlib.sha256(values.tobytes()).hexdigest()[:16] == "9fd5d6ac2f55067d"
    assert abs(values.std() - 1 / 6) < 0.01  # fan-in 36
    assert not (values == seeded_values("unet.conv_in.weight", (320, 4, 3, 3), seed=1, scheme=2)).all()
    assert not (values == seeded_values("unet.conv_in.weight", (320, 4, 3, 3), seed=0, scheme=1)).all()
    scale = seeded_values("encoder.layer_norm.weight", (4096,), seed=0, scheme=2)
    assert 0.9 <= scale.min() and scale.max() <= 1.1


# A full-size build's path (empty parameters, filled once in the recipe's dtype) on tiny-sd3's shapes:
# loads through from_pretrained with nothing left empty, T5's embedding tied as the library ties it.
EMPTY_THEN_FILLED = r"""
import json, sys, tempfile
from pathlib import Path

import torch
from diffusers import StableDiffusion3Pipeline
from safetensors import safe_open

from sdperf.models import catalog
from sdperf.models.build import build, parameter_counts

catalog.RECIPES["probe"] = dict(catalog.TINY_SD3, weights_scheme=2, weights_dtype="float16")
folder = Path(sys.argv[1])
build("probe", folder)
pipe = StableDiffusion3Pipeline.from_pretrained(folder)
networks = {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
t5 = pipe.text_encoder_3
print(json.dumps({
    "counts": {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()},
    "expected": parameter_counts("probe"),
    "meta": [name for name, net in networks.items() for t in [*net.parameters(), *net.buffers()] if t.is_meta],
    "stored_dtypes": sorted({safe_open(f, "pt").get_slice(key).get_dtype()
                             for f in folder.rglob("*.safetensors") for key in safe_open(f, "pt").keys()}),
    "tied": t5.shared.weight.data_ptr() == t5.encoder.embed_tokens.weight.data_ptr(),
}))
"""


def test_a_full_size_build_path_fills_every_parameter_once_in_the_recipes_dtype(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMPTY_THEN_FILLED, str(tmp_path / "probe")],
        check=True, capture_output=True, text=True, timeout=300,
    )
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["meta"] == [] and found["tied"], found
    assert found["counts"] == {k: v for k, v in found["expected"].items() if "." not in k}
    assert found["stored_dtypes"] == ["F16"]

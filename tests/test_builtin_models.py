"""Built-in models: pure-function weights, byte-identical builds, identical images across workers."""

from __future__ import annotations

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

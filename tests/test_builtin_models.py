"""Built-in models: pure-function weights, byte-identical builds, identical images across workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdperf.config.profiles import load_profiles
from sdperf.config.recipes import REGISTRY
from sdperf.execution.cases import make_case
from sdperf.execution.process import Worker
from sdperf.models.store import ModelSpec
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


def _build(name: str, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "build-model", name, "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sd3"])
def test_two_builds_in_separate_processes_are_byte_identical(tmp_path: Path, name: str) -> None:
    _build(name, tmp_path / "a")
    _build(name, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.safetensors"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.safetensors"))
    assert files_a == files_b and len(files_a) >= 3
    for relative in files_a:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def _generate_twice(case) -> tuple[str, str]:
    with Worker(case) as worker:
        worker.start()
        worker.request("load", case=case.to_json())
        return worker.request("generate")["image_sha256"], worker.request("generate")["image_sha256"]


def test_fixed_seed_image_is_bitwise_identical_across_fresh_workers() -> None:
    profile = load_profiles()["cpu"]
    case = make_case(profile, REGISTRY["fp32"], ModelSpec(name="tiny-sd15"), {"timeout_s": 300})
    first_worker = _generate_twice(case)
    second_worker = _generate_twice(case)
    assert first_worker[0] == first_worker[1], "two calls in one worker differ"
    assert first_worker == second_worker, "two fresh workers differ"


def test_tiny_sd3_generates_with_three_text_encoders_and_two_prompts() -> None:
    import dataclasses

    profile = load_profiles()["cuda_lowvram"]
    case = make_case(profile, REGISTRY["fp32"], ModelSpec(name="tiny-sd3"), {"timeout_s": 300})
    # The report seeded a CUDA generator; this machine has none, the pipeline is the same.
    case = dataclasses.replace(case, workload=dataclasses.replace(case.workload, generator_device="cpu"))
    with Worker(case) as worker:
        worker.start()
        loaded = worker.request("load", case=case.to_json())
        reply = worker.request("generate")
    assert loaded["pipeline_class"] == "StableDiffusion3Pipeline"
    assert {"text_encoder", "text_encoder_2", "text_encoder_3", "transformer"} <= set(loaded["components"])
    assert reply["image_shape"] == [1, 256, 256, 3]
    assert len(reply["step_s"]) == reply["denoiser_calls"] == 28
    assert reply["text_encoding_s"] > 0 and reply["vae_decode_s"] > 0


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

"""Recipes run for real on the built-in models, prove themselves inside the worker, and fail
when their setting did not take effect (a thread variable overridden, a static shape not
applied). GPU recipes' code paths run here where diffusers allows it on a CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import SuiteRun
from sdperf.config.profiles import load_profiles
from sdperf.config.recipes import REGISTRY
from sdperf.execution.cases import make_case
from sdperf.execution.environments import environment_python
from sdperf.host.capabilities import host_facts, unmet_for
from sdperf.host.detection import detect_host
from sdperf.models.store import ModelSpec

QUICK = ("-m", "cpu", "--sdperf-profile=cpu", "--sdperf-rounds=1", "--sdperf-warmup=0", "--sdperf-progress=0", "-rs")
# The end-to-end run of every cpu recipe (tests/conftest.py) holds the system recipes' audits.
PROFILES = load_profiles()


def runnable_here(*names: str) -> list[str]:
    facts = host_facts(detect_host(), environment_python)
    profile = PROFILES["cpu"]
    return [name for name in names if unmet_for(make_case(profile, REGISTRY[name], ModelSpec("tiny-sd15"), {}), facts) is None]


SYSTEM_RECIPES = ("threads_unset", "omp1", "omp_cores_openblas1", "jemalloc", "tcmalloc", "pin_cores", "bf16", "xeon_stack")


def test_system_level_recipes_run_and_prove_what_is_in_force(cpu_run: SuiteRun) -> None:
    names = runnable_here(*SYSTEM_RECIPES)
    assert {"omp1", "bf16"} <= set(names)  # these need nothing beyond the suite's own packages
    cases = cpu_run.cases()
    assert {name: cases[f"cpu-{name}"]["status"] for name in names} == dict.fromkeys(names, "passed")
    audit_of = {name: cases[f"cpu-{name}"]["load"]["audit"] for name in names}
    proof_of = {name: cases[f"cpu-{name}"]["load"]["transform_proof"] for name in names}
    assert audit_of["omp1"]["torch_threads"] == 1
    assert audit_of["threads_unset"]["environment"]["OMP_NUM_THREADS"] is None
    assert proof_of["bf16"]["bf16_autocast"]["autocast"] == "cpu bfloat16"
    if "jemalloc" in names:
        assert audit_of["jemalloc"]["allocators"] == ["jemalloc"]
        assert audit_of["jemalloc"]["environment"]["MALLOC_CONF"].startswith("oversize_threshold:1")
    if "tcmalloc" in names:
        assert audit_of["tcmalloc"]["allocators"] == ["tcmalloc"]
    if "pin_cores" in names:
        launch = cases["cpu-pin_cores"]["load"]["launch"]["command_prefix"]
        assert launch[0] in ("numactl", "taskset") and launch[-1] == f"0-{audit_of['pin_cores']['torch_threads'] - 1}"
        assert audit_of["pin_cores"]["cpus"] == list(range(audit_of["pin_cores"]["torch_threads"]))
    if "xeon_stack" in names:
        assert set(proof_of["xeon_stack"]) == {"load", "bf16_autocast", "dpm_solver"}
        assert audit_of["xeon_stack"]["allocators"] == ["jemalloc"]


OVERRIDE = '''
import os
os.environ["OMP_NUM_THREADS"] = "2"  # a site-wide setting that overrides the recipe's
'''


def test_a_thread_variable_overridden_inside_the_worker_fails_the_case(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = latency_suite.mkdir("site")
    (site / "sitecustomize.py").write_text(OVERRIDE)
    monkeypatch.setenv("PYTHONPATH", str(site))
    # Workers inherit no PYTHONPATH unless told to: name it, as a user would to pass a site-wide setting.
    result = latency_suite.runpytest(*QUICK, "--sdperf-recipes=omp1", "--sdperf-inherit-env=PYTHONPATH")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*case cpu-omp1: recipe omp1 did not take effect: OMP_NUM_THREADS=1 was set, "
        "but the worker's environment has OMP_NUM_THREADS=2*",
        "*sdperf results*",
        "cpu-omp1 failed: case cpu-omp1: recipe omp1 did not take effect*",
    ])


def test_a_recipe_that_cannot_take_effect_here_is_skipped_with_its_reason(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest(
        "-m", "pi5", "--sdperf-profile=pi5", "--sdperf-recipes=omp4_openblas1,ipex_bf16", "--sdperf-rounds=1",
        "--collect-only", "-q",
    )
    # ipex_bf16 is not a Pi recipe: it is not even collected for pi5.
    result.stdout.fnmatch_lines(["*test_latency[[]pi5-omp4_openblas1[]]*", "*1/* tests collected*"])
    assert "pi5-ipex_bf16" not in result.stdout.str()
    if host_facts(detect_host(), environment_python).cpus < 4:
        ran = latency_suite.runpytest(
            "-m", "pi5", "--sdperf-profile=pi5", "--sdperf-recipes=omp4_openblas1", "--sdperf-rounds=1", "-rs"
        )
        ran.assert_outcomes(skipped=1)
        ran.stdout.fnmatch_lines(["*recipe omp4_openblas1 sets OMP_NUM_THREADS=4, but this process may use only*"])


def _in_worker(script: str, timeout: int = 600) -> str:
    """Run `script` in a fresh interpreter (torch stays out of the test process)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


CASE_SCRIPT = '''
import dataclasses, json, sys
from sdperf.execution.cases import make_case
from sdperf.models.store import ModelSpec
from sdperf.config.profiles import load_profiles
from sdperf.config.recipes import REGISTRY
from sdperf.worker.pipeline import PipelineSession, WorkloadError

def session(profile, recipe, model, on_cpu=False, **workload):
    profile = load_profiles()[profile]
    case = make_case(profile, REGISTRY[recipe], ModelSpec(model), {})
    if on_cpu:  # the recipe's loading, without its move to the GPU
        case = dataclasses.replace(case, transforms=(), load_dtype=None, device="cpu")
    if workload:
        case = dataclasses.replace(case, workload=dataclasses.replace(case.workload, **workload))
    found = PipelineSession(case.to_json(), lambda *args: None)
    return found, found.load()
'''


@pytest.mark.skipif(not runnable_here("openvino_static"), reason="OpenVINO is not installed: pip install -e '.[openvino]'")
def test_openvino_static_runs_its_compiled_shape_and_refuses_another_size() -> None:
    out = _in_worker(CASE_SCRIPT + '''
found, loaded = session("cpu", "openvino_static", "tiny-sd15")
reply = found.generate()
print(json.dumps({"shape": reply["image_shape"], "proof": loaded["transform_proof"]["load"]}))
# The same compiled pipeline asked for another size: OpenVINO only warns, the worker refuses.
found.case["workload"] = {**found.case["workload"], "height": 96, "width": 96}
try:
    found.generate()
except WorkloadError as error:
    print("REFUSED", error)
''')
    first = json.loads(out.splitlines()[0])
    assert first["shape"] == [1, 128, 128, 3]
    assert first["proof"]["openvino"]["INFERENCE_PRECISION_HINT"].lower() in ("f32", "float32")
    assert all("?" not in shape for shape in first["proof"]["unet_input_shapes"].values())
    assert "REFUSED the pipeline returned 128x128 images, the workload asks for 96x96" in out


def test_gpu_recipe_code_paths_that_diffusers_allows_on_a_cpu_run_here_and_tiny_sd3_generates() -> None:
    out = _in_worker(CASE_SCRIPT + '''
import torch
from sdperf.worker import transforms
found, loaded = session("cuda_lowvram", "drop_t5", "tiny-sd3", on_cpu=True, generator_device="cpu")
print("dropped", loaded["transform_proof"]["load"].get("dropped"), found.pipe.text_encoder_3)
print("drop_t5 image", found.generate()["image_shape"])
found, loaded = session("cuda_lowvram", "fp32", "tiny-sd3", generator_device="cpu")
reply = found.generate()
print("sd3", json.dumps({"class": loaded["pipeline_class"], "components": sorted(loaded["components"]),
                         "shape": reply["image_shape"], "steps": len(reply["step_s"]), "calls": reply["denoiser_calls"],
                         "phases": [reply["text_encoding_s"] > 0, reply["vae_decode_s"] > 0]}))
found.pipe, proof = transforms.vae_tiling(found.pipe, found.case)
print("tiling", proof, found.generate()["image_shape"])
try:
    transforms.model_cpu_offload(found.pipe, found.case)
except RuntimeError as error:
    print("offload refused:", error)
''')
    # tiny-sd3 generates as the report's pipeline does: three text encoders, a transformer, 28 steps.
    sd3 = json.loads(next(line for line in out.splitlines() if line.startswith("sd3 "))[4:])
    assert sd3["class"] == "StableDiffusion3Pipeline"
    assert {"text_encoder", "text_encoder_2", "text_encoder_3", "transformer"} <= set(sd3["components"])
    assert sd3["shape"] == [1, 256, 256, 3] and sd3["steps"] == sd3["calls"] == 28 and sd3["phases"] == [True, True]
    assert "dropped ['text_encoder_3', 'tokenizer_3'] None" in out
    assert "drop_t5 image [1, 256, 256, 3]" in out
    assert "tiling {'vae_tiling': True} [1, 256, 256, 3]" in out
    # Without CUDA diffusers refuses model offload itself; the suite skips it before any worker starts.
    assert "offload refused:" in out and "accelerator" in out

"""A user's model folder is checked before any worker starts: one message naming the folder, what
is missing or refused and the fix; a model of another pipeline fails its cases; published figures
always say why they are not comparable; `sdperf build-model` prints only its own lines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import builtin_model_path
from sdperf.models.store import ModelSpec, parse_model_option, why_not_comparable, wrong_pipeline

SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.37.1",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SD3_INDEX = {
    "_class_name": "StableDiffusion3Pipeline",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "transformer": ["diffusers", "SD3Transformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    **{f"text_encoder{n}": ["transformers", "CLIPTextModelWithProjection"] for n in ("", "_2")},
    **{f"tokenizer{n}": ["transformers", "CLIPTokenizer"] for n in ("", "_2")},
    "text_encoder_3": ["transformers", "T5EncoderModel"],
    "tokenizer_3": ["transformers", "T5TokenizerFast"],
}


def write_safetensors(path: Path) -> None:
    save_file({"weight": np.zeros((2, 3), dtype=np.float32)}, str(path))


def complete_folder(root: Path, index: dict = SD15_INDEX) -> Path:
    """A folder the loader can read, as save_pretrained writes it (tiny JSON, tiny weights)."""
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps(index))
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or None in entry:
            continue
        library, class_name = entry
        folder = root / name
        folder.mkdir()
        if class_name.endswith("Scheduler"):
            (folder / "scheduler_config.json").write_text("{}")
        elif "Tokenizer" in class_name:
            (folder / "tokenizer.json").write_text("{}")
        else:
            (folder / "config.json").write_text("{}")
            weights = "diffusion_pytorch_model" if library == "diffusers" else "model"
            write_safetensors(folder / f"{weights}.safetensors")
    return root


def refusal(folder: Path) -> str:
    with pytest.raises(ValueError) as raised:
        parse_model_option(str(folder), "--sdperf-model")
    return str(raised.value)


def _only_index(folder: Path) -> None:
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        shutil.rmtree(folder / component)


def _bin_only(folder: Path) -> None:
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x02pickle")


def _fp16_only(folder: Path) -> None:
    unet = folder / "unet"
    (unet / "diffusion_pytorch_model.safetensors").rename(unet / "diffusion_pytorch_model.fp16.safetensors")


def _shard_missing(folder: Path) -> None:
    encoder = folder / "text_encoder"
    (encoder / "model.safetensors").rename(encoder / "model-00001-of-00002.safetensors")
    shards = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (encoder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))


def _cut_short(folder: Path) -> None:
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])  # an interrupted copy


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        (_only_index, "  unet/: missing (model_index.json lists unet as diffusers UNet2DConditionModel)"),
        (lambda f: shutil.rmtree(f / "vae"), "  vae/: missing (model_index.json lists vae as diffusers AutoencoderKL)"),
        (_bin_only, "  unet/: weights only as diffusion_pytorch_model.bin: pickle, which the suite never loads "
                    "(safetensors only)"),
        (lambda f: (f / "unet" / "config.json").unlink(), "  unet/: no config.json"),
        (lambda f: (f / "scheduler" / "scheduler_config.json").unlink(), "  scheduler/: no scheduler_config.json"),
        (lambda f: (f / "tokenizer" / "tokenizer.json").unlink(), "  tokenizer/: no tokenizer files (one of "),
        (_fp16_only, "  unet/: only fp16 variant weights (diffusion_pytorch_model.fp16.safetensors); the suite loads "
                     "the plain names"),
        (_shard_missing, "  text_encoder/: model.safetensors.index.json names 2 shards, 1 missing: "
                         "model-00002-of-00002.safetensors"),
        (_cut_short, "  vae/: diffusion_pytorch_model.safetensors is cut short: "),
    ],
    ids=["only-model-index", "component-missing", "bin-only", "config-missing", "scheduler-config-missing",
         "tokenizer-files-missing", "fp16-variant-only", "shard-missing", "weights-cut-short"],
)
def test_an_unloadable_folder_is_refused_at_start_naming_the_folder_the_problem_and_the_fix(
    tmp_path: Path, break_it, problem: str
) -> None:
    folder = complete_folder(tmp_path / "model")
    break_it(folder)
    lines = refusal(folder).splitlines()
    assert lines[0] == f"--sdperf-model: model folder {str(folder)!r} cannot be loaded:"
    assert any(line.startswith(problem) for line in lines[1:]), lines
    assert lines[-1].startswith("fix: ")


def test_pickle_weights_get_a_working_conversion_command(tmp_path: Path) -> None:
    folder = complete_folder(tmp_path / "model")
    _bin_only(folder)
    fix = refusal(folder).splitlines()[-1]
    assert fix == (
        "fix: convert to safetensors (this loads the pickle once: only for files you trust), then point "
        f"--sdperf-model at the copy: python -c \"from diffusers import DiffusionPipeline; DiffusionPipeline."
        f"from_pretrained({str(folder)!r}).save_pretrained({str(folder) + '-safetensors'!r}, safe_serialization=True)\""
    )


def test_variant_only_weights_are_re_saved_loading_that_variant(tmp_path: Path) -> None:
    folder = complete_folder(tmp_path / "model")
    _fp16_only(folder)
    assert "from_pretrained(" + repr(str(folder)) + ", variant='fp16')" in refusal(folder).splitlines()[-1]


def test_a_pipeline_missing_a_component_in_model_index_is_refused(tmp_path: Path) -> None:
    index = {key: value for key, value in SD15_INDEX.items() if key != "vae"}
    folder = complete_folder(tmp_path / "model", index)
    assert "  model_index.json: a StableDiffusionPipeline needs vae: not listed, or null" in refusal(folder)


@pytest.mark.parametrize("layout", ["plain", "sharded", "plain-with-fp16-and-bin-beside", "sd3"])
def test_loadable_folders_pass(tmp_path: Path, layout: str) -> None:
    folder = complete_folder(tmp_path / "model", SD3_INDEX if layout == "sd3" else SD15_INDEX)
    unet = folder / "unet"
    if layout == "sharded":
        (unet / "diffusion_pytorch_model.safetensors").unlink()
        for number in (1, 2):
            write_safetensors(unet / f"diffusion_pytorch_model-0000{number}-of-00002.safetensors")
        weight_map = {f"w{n}": f"diffusion_pytorch_model-0000{n}-of-00002.safetensors" for n in (1, 2)}
        (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    if layout == "plain-with-fp16-and-bin-beside":  # as the hub's SD 1.5 folders are
        write_safetensors(unet / "diffusion_pytorch_model.fp16.safetensors")
        (unet / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    assert parse_model_option(str(folder), "--sdperf-model") == ModelSpec(name="model", path=folder.resolve())


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sd3"])
def test_the_built_in_models_saved_by_diffusers_pass(name: str) -> None:
    folder = builtin_model_path(name)
    assert parse_model_option(str(folder), "--sdperf-model").path == folder.resolve()


CHECK_WITHOUT_LIBRARIES = """
import sys
from sdperf.models.store import parse_model_option
try:
    parse_model_option(sys.argv[1], "--sdperf-model")
except ValueError:
    pass
heavy = {"torch", "diffusers", "transformers", "safetensors"} & set(sys.modules)
print(sorted(heavy))
"""


def test_the_check_imports_no_model_library(tmp_path: Path) -> None:
    folder = complete_folder(tmp_path / "model")
    _bin_only(folder)
    done = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_LIBRARIES, str(folder)],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


RECORD_WORKERS = """
from pathlib import Path

def pytest_sdperf_worker_started(case, pid):
    with (Path(__file__).parent / "workers.txt").open("a") as log:
        log.write(f"{case.id}\\n")
"""


def test_the_reported_folder_fails_once_at_start_and_starts_no_worker(latency_suite: pytest.Pytester) -> None:
    # The user's report: a folder holding model_index.json alone.
    folder = latency_suite.mkdir("idx")
    (folder / "model_index.json").write_text(
        '{"_class_name":"StableDiffusionPipeline","unet":["diffusers","UNet2DConditionModel"]}'
    )
    latency_suite.makeconftest(RECORD_WORKERS)
    result = latency_suite.runpytest("-m", "cpu", "--sdperf-recipes=fp32", f"--sdperf-model={folder}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = str(result.stderr)
    assert errors.count("cannot be loaded") == 1 and "Traceback" not in errors + str(result.stdout)
    result.stderr.fnmatch_lines([
        f"*--sdperf-model: model folder '{folder}' cannot be loaded:",
        "  model_index.json: a StableDiffusionPipeline needs vae, text_encoder, tokenizer, scheduler: not listed, "
        "or null",
        "  unet/: missing (model_index.json lists unet as diffusers UNet2DConditionModel)",
        "fix: copy the complete pipeline folder*",
    ])
    assert not (latency_suite.path / "workers.txt").exists()


def test_a_model_of_another_pipeline_fails_each_case_naming_its_full_path(latency_suite: pytest.Pytester) -> None:
    folder = complete_folder(latency_suite.path / "sd3-medium", SD3_INDEX)
    latency_suite.makeconftest(RECORD_WORKERS)
    result = latency_suite.runpytest("-m", "cpu", "--sdperf-recipes=fp32", f"--sdperf-model={folder}")
    result.assert_outcomes(errors=1)  # failed at set-up, before any worker: red, not skipped
    result.stdout.fnmatch_lines([
        f"case cpu-fp32: model folder '{folder}' is a StableDiffusion3Pipeline; profile cpu needs a "
        "StableDiffusionPipeline model: point --sdperf-model at one (built in: builtin:tiny-sd15, builtin:sd15)",
    ])
    assert "skipped" not in str(result.stdout)
    assert not (latency_suite.path / "workers.txt").exists()


def test_wrong_pipeline_names_a_built_in_model_by_name_and_passes_a_matching_one(tmp_path: Path) -> None:
    assert wrong_pipeline(ModelSpec(name="tiny-sd3"), "pi5", "StableDiffusionPipeline") == (
        "built-in model builtin:tiny-sd3 is a StableDiffusion3Pipeline; profile pi5 needs a StableDiffusionPipeline "
        "model: point --sdperf-model at one (built in: builtin:tiny-sd15, builtin:sd15)"
    )
    assert wrong_pipeline(ModelSpec(name="sd15"), "pi5", "StableDiffusionPipeline") is None
    folder = complete_folder(tmp_path / "model")
    assert wrong_pipeline(ModelSpec(name="model", path=folder), "pi5", "StableDiffusionPipeline") is None


def test_every_run_the_published_figure_is_not_comparable_with_says_why() -> None:
    from sdperf.config.profiles import load_profiles

    profile = load_profiles()["pi5"]
    report, scaled = profile.workload, profile.builtin_workload
    folder = ModelSpec(name="model", path=Path("/srv/models/sd15"))
    runs = {
        "tiny built-in model": (ModelSpec(name="tiny-sd15"), scaled),
        "tiny built-in model on the report's workload": (ModelSpec(name="tiny-sd15"), report),
        "full-size built-in model": (ModelSpec(name="sd15"), report),
        "model folder": (folder, report),
        "model folder, another workload": (folder, scaled),
    }
    reasons = {label: why_not_comparable(model, workload, report) for label, (model, workload) in runs.items()}
    assert reasons == {
        "tiny built-in model": "this run uses a tiny built-in model",
        "tiny built-in model on the report's workload": "this run uses a tiny built-in model",
        "full-size built-in model": "",
        "model folder": "",
        "model folder, another workload": "this run's workload differs from the report's",
    }


@pytest.mark.parametrize("recorded", [{"why_not": ""}, {}], ids=["empty-reason", "no-reason"])
def test_the_published_figure_line_never_prints_an_empty_reason(recorded: dict) -> None:
    from sdperf.reporting.table import results_table
    from sdperf.storage.results import CaseResult

    reference = {"latency_s": 851.0, "label": "OMP 4", "source": "blog", "comparable": False, **recorded}
    result = CaseResult(case_id="pi5-fp32", test="t", profile="pi5", recipe="fp32", model="m", status="passed",
                        parent_latencies_s=[1.0], reference=reference)
    (line,) = [line for line in results_table([result]) if " published: " in line]
    assert "not comparable: )" not in line
    assert re.search(r"\(not comparable: \w[^)]*\)", line), line


def test_build_model_prints_only_its_own_lines(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "build-model", "tiny-sd15", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # Neither library warnings ("Multiple distributions found ...", "... requires torchvision") nor
    # progress bars ("Writing model shards: 100%|...|"): sdperf's two lines and nothing else.
    assert done.stderr == ""
    assert re.fullmatch(rf"{re.escape(str(out))}\nweights sha256 [0-9a-f]{{64}}\n", done.stdout), done.stdout


REQUIRED_BY_DIFFUSERS = """
import inspect, json
import diffusers
from sdperf.models.catalog import PIPELINE_COMPONENTS

required = {}
for name in PIPELINE_COMPONENTS:
    pipeline = getattr(diffusers, name)
    parameters = list(inspect.signature(pipeline.__init__).parameters.values())[1:]
    required[name] = sorted(p.name for p in parameters
                            if p.default is inspect.Parameter.empty and p.name not in pipeline._optional_components)
print(json.dumps(required))
"""


def test_the_components_each_pipeline_needs_are_those_the_installed_diffusers_needs() -> None:
    from sdperf.models.catalog import PIPELINE_COMPONENTS

    done = subprocess.run([sys.executable, "-c", REQUIRED_BY_DIFFUSERS], capture_output=True, text=True,
                          timeout=300, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == {k: sorted(v) for k, v in PIPELINE_COMPONENTS.items()}

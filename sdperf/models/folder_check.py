"""Can the worker load this diffusers folder? Checked once, before any worker starts.

The worker loads with `DiffusionPipeline.from_pretrained(..., use_safetensors=True,
local_files_only=True)` and no `variant=`: a folder it cannot load would otherwise fail every
case with the same long traceback. Only names, small JSON files and safetensors headers are
read: no torch, diffusers or transformers here, so the pytest process stays light.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sdperf.models.catalog import PIPELINE_COMPONENTS

# The names diffusers (ModelMixin) and transformers (PreTrainedModel) load without `variant=`.
PLAIN_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")
SHARD_INDEXES = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")
# Variant names as diffusers 0.37 and transformers 5 write them: `diffusion_pytorch_model.fp16.safetensors`,
# shards `model.fp16-00001-of-00002.safetensors` (legacy `model-00001-of-00002.fp16.safetensors`) and
# their index `model.safetensors.index.fp16.json`.
_VARIANT_FILE = re.compile(
    r"^(?:diffusion_pytorch_model|model)"
    r"(?:\.(?P<named>\w+?)(?:-\d+-of-\d+)?\.safetensors|-\d+-of-\d+\.(?P<legacy>\w+)\.safetensors"
    r"|\.safetensors\.index\.(?P<index>\w+)\.json)$"
)
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")
# Any one of these lets transformers build a tokenizer (fast, CLIP's BPE, T5's SentencePiece, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "vocab.txt")
CONFIG_FILES = {"scheduler": "scheduler_config.json", "processor": "preprocessor_config.json", "weights": "config.json"}


@dataclass(frozen=True)
class Problem:
    """One thing that stops the folder from loading: where, what, and which kind of fix."""

    where: str
    what: str
    fix: str = "copy"  # "copy", "convert" (pickle) or "variant"
    variant: str = ""  # for a "variant" fix: the variant to load


class ModelFolderError(ValueError):
    """The folder cannot be loaded; the message names the folder, every problem and the fixes."""


def listed_components(index: dict) -> dict[str, tuple[str, str]]:
    """Components model_index.json lists with a [library, class] entry (null ones are left out)."""
    return {
        name: (entry[0], entry[1])
        for name, entry in index.items()
        if not name.startswith("_") and isinstance(entry, list) and len(entry) == 2 and None not in entry
    }


def _kind(class_name: str) -> str:
    """What a component is, by its class name: the files it needs follow from that."""
    if class_name.endswith("Scheduler"):
        return "scheduler"
    if "Tokenizer" in class_name:
        return "tokenizer"
    if class_name.endswith(("ImageProcessor", "FeatureExtractor", "Processor")):
        return "processor"
    return "weights"


def _variants(names: list[str]) -> list[str]:
    found = (_VARIANT_FILE.match(name) for name in names)
    return sorted({m["named"] or m["legacy"] or m["index"] for m in found if m})


def _first(names: list[str], more: int = 2) -> str:
    return ", ".join(names[:more]) + (", ..." if len(names) > more else "")


def safetensors_problem(path: Path) -> str | None:
    """A file that is not safetensors or is cut short (an interrupted copy), from its header alone."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length > size - 8:
                return f"{path.name} is not a safetensors file or is cut short ({size} bytes)"
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        return f"{path.name} has no readable safetensors header ({type(error).__name__})"
    if 8 + length + end > size:
        return f"{path.name} is cut short: {size} bytes where its header needs {8 + length + end}"
    return None


def _shards_problem(folder: Path, index_name: str) -> str | None:
    """What is wrong with a sharded checkpoint: its index, a shard missing or cut short."""
    try:
        shards = sorted(set(json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{index_name} is not a shard index ({type(error).__name__})"
    if not shards:
        return f"{index_name} names no shards"
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        return f"{index_name} names {len(shards)} shards, {len(missing)} missing: {_first(missing)}"
    return next(filter(None, (safetensors_problem(folder / name) for name in shards)), None)


def _unloadable_weights(name: str, files: list[str]) -> Problem:
    """What a component folder holds instead of safetensors weights under the plain names."""
    variants = _variants(files)
    if variants:
        shown = _first([file for file in files if file.endswith(".safetensors")] or files)
        return Problem(f"{name}/", f"only {'/'.join(variants)} variant weights ({shown}); the suite loads the "
                       f"plain names ({' or '.join(PLAIN_WEIGHTS)}), without variant=", "variant", variants[0])
    pickled = [file for file in files if file.endswith(PICKLE_SUFFIXES)]
    if pickled:
        return Problem(f"{name}/", f"weights only as {_first(pickled)}: pickle, which the suite never loads "
                       "(safetensors only)", "convert")
    stray = [file for file in files if file.endswith(".safetensors")]
    if stray:
        return Problem(f"{name}/", f"safetensors under names diffusers does not load: {_first(stray)}")
    return Problem(f"{name}/", f"no weights ({' or '.join(PLAIN_WEIGHTS)}, or shards with a *.safetensors.index.json)")


def _weights_problem(name: str, folder: Path) -> Problem | None:
    """Safetensors weights under a name the loader reads, whole; or what is there instead."""
    plain = [folder / file for file in PLAIN_WEIGHTS if (folder / file).is_file()]
    if plain:
        problem = next(filter(None, map(safetensors_problem, plain)), None)
        return Problem(f"{name}/", problem) if problem else None
    for index_name in SHARD_INDEXES:
        if (folder / index_name).is_file():
            problem = _shards_problem(folder, index_name)
            return Problem(f"{name}/", problem) if problem else None
    return _unloadable_weights(name, sorted(path.name for path in folder.iterdir() if path.is_file()))


def _component_problems(root: Path, name: str, library: str, class_name: str) -> list[Problem]:
    folder = root / name
    if not folder.is_dir():
        return [Problem(f"{name}/", f"missing (model_index.json lists {name} as {library} {class_name})")]
    kind = _kind(class_name)
    if kind == "tokenizer":
        found = any((folder / file).is_file() for file in TOKENIZER_FILES)
        return [] if found else [Problem(f"{name}/", f"no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")]
    config = CONFIG_FILES[kind]
    problems = [] if (folder / config).is_file() else [Problem(f"{name}/", f"no {config}")]
    weights = _weights_problem(name, folder) if kind == "weights" else None
    return problems + ([weights] if weights else [])


def _index_problems(index: dict) -> list[Problem]:
    """A pipeline class, and the components it cannot load without, in model_index.json."""
    pipeline = index.get("_class_name")
    if not pipeline:
        return [Problem("model_index.json", "names no pipeline class (_class_name)")]
    listed = listed_components(index)
    absent = [name for name in PIPELINE_COMPONENTS.get(pipeline, ()) if name not in listed]
    if absent:
        return [Problem("model_index.json", f"a {pipeline} needs {', '.join(absent)}: not listed, or null")]
    if not listed:
        return [Problem("model_index.json", "lists no components")]
    return []


def _fixes(folder: Path, problems: list[Problem]) -> list[str]:
    kinds = {problem.fix for problem in problems}
    fixes = []
    if "copy" in kinds:
        fixes.append(
            "copy the complete pipeline folder: model_index.json and, for each component it lists, its folder with "
            "its config and safetensors weights (as save_pretrained writes it, or `hf download REPO --local-dir DIR`)"
        )
    if kinds & {"convert", "variant"}:
        variant = next((f", variant={p.variant!r}" for p in problems if p.variant), "")
        copy = folder.with_name(folder.name + "-safetensors")
        how = ("convert to safetensors (this loads the pickle once: only for files you trust)" if "convert" in kinds
               else "re-save under the plain names")
        fixes.append(
            f"{how}, then point --sdperf-model at the copy: python -c \"from diffusers import DiffusionPipeline; "
            f"DiffusionPipeline.from_pretrained({str(folder)!r}{variant})"
            f".save_pretrained({str(copy)!r}, safe_serialization=True)\""
        )
    return fixes


def folder_problems(folder: Path) -> list[Problem]:
    """Everything that stops the worker from loading `folder` (a folder with model_index.json)."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [Problem("model_index.json", f"cannot be read as JSON ({error})")]
    if not isinstance(index, dict):
        return [Problem("model_index.json", "is not a JSON object")]
    problems = _index_problems(index)
    for name, (library, class_name) in sorted(listed_components(index).items()):
        problems += _component_problems(folder, name, library, class_name)
    return problems


def check_model_folder(folder: Path, source: str) -> None:
    """Raise ModelFolderError naming the folder, each problem and its fix, unless the worker can load it."""
    problems = folder_problems(folder)
    if not problems:
        return
    lines = [f"{source}: model folder {str(folder)!r} cannot be loaded:"]
    lines += [f"  {problem.where}: {problem.what}" for problem in problems]
    lines += [f"fix: {fix}" for fix in _fixes(folder, problems)]
    raise ModelFolderError("\n".join(lines))

"""Where models come from: built-in recipes cached on disk, or a user's folder.

Light on imports: the pytest process resolves model specs without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# Tiny (the default, scaled-down workloads) and full size (the reports' workloads, real shapes).
TINY_MODELS = ("tiny-sd15", "tiny-sd3")
FULL_SIZE_MODELS = ("sd15", "sd3-medium")
BUILTIN_MODELS = TINY_MODELS + FULL_SIZE_MODELS
BUILTIN_PREFIX = "builtin:"
SYNTHETIC_NOTE = (
    "synthetic weights of the published shapes: latency and memory compare with real weights, "
    "images do not (fidelity and goldens are judged on real weights and on the tiny models)"
)
READY_MARKER = "sdperf-build.json"  # written last: a folder without it is unfinished


def cache_root() -> Path:
    """`SDPERF_CACHE` if set, else the user's cache folder."""
    configured = os.environ.get("SDPERF_CACHE")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdperf"))


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: a built-in recipe name or a local diffusers folder."""

    name: str
    path: Path | None = None

    @property
    def builtin(self) -> bool:
        return self.path is None

    @property
    def scaled_down(self) -> bool:
        """A tiny built-in model: runs the profiles' scaled-down workloads and run sizes."""
        return self.path is None and self.name in TINY_MODELS

    @property
    def synthetic_full_size(self) -> bool:
        """A full-size built-in model: real shapes, synthetic weights, the reports' workloads."""
        return self.path is None and self.name in FULL_SIZE_MODELS

    def to_json(self) -> dict:
        return {"name": self.name, "path": str(self.path) if self.path else None}

    @classmethod
    def from_json(cls, data: dict) -> ModelSpec:
        return cls(name=data["name"], path=Path(data["path"]) if data.get("path") else None)


def builtin_name(value: str) -> str | None:
    """The built-in model `value` names (`sd15` or `builtin:sd15`), or None."""
    name = value.removeprefix(BUILTIN_PREFIX)
    if name in BUILTIN_MODELS:
        return name
    return None


def parse_model_option(value: str, source: str) -> ModelSpec:
    """Turn `--sdperf-model` into a spec, or fail naming the value and the fix."""
    name = builtin_name(value)
    if name:
        return ModelSpec(name=name)
    known = ", ".join(BUILTIN_PREFIX + name for name in BUILTIN_MODELS)
    if value.startswith(BUILTIN_PREFIX):
        raise ValueError(f"{source}: {value!r} is not a built-in model; built-in: {known} (list them: sdperf models)")
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"{source}: model {value!r} is neither a built-in model ({known}) "
            "nor an existing folder; pass a local diffusers folder (one with model_index.json)"
        )
    if not (folder / "model_index.json").is_file():
        raise ValueError(
            f"{source}: folder {str(folder)!r} has no model_index.json; "
            "point it at a diffusers pipeline folder (as saved by save_pretrained)"
        )
    from sdperf.models.folder_check import check_model_folder

    # Once here, at start: a folder the worker cannot load would fail every case with its traceback.
    check_model_folder(folder.resolve(), source)
    return ModelSpec(name=folder.name, path=folder.resolve())


def pipeline_class_of(spec: ModelSpec) -> str:
    """The pipeline class a model folder declares (without importing diffusers)."""
    if spec.builtin:
        from sdperf.models.catalog import RECIPES

        return RECIPES[spec.name]["pipeline"]
    index = json.loads((spec.path / "model_index.json").read_text(encoding="utf-8"))
    return index.get("_class_name", "")


class WrongPipeline(Exception):
    """The model is of another pipeline than the profile runs: its cases fail, naming both."""


def wrong_pipeline(spec: ModelSpec, profile: str, wanted: str) -> str | None:
    """Why `spec` cannot run a profile that needs a `wanted` pipeline, or None when it can."""
    found = pipeline_class_of(spec)
    if found == wanted:
        return None
    from sdperf.models.catalog import builtins_of

    model = f"built-in model {BUILTIN_PREFIX}{spec.name}" if spec.builtin else f"model folder {str(spec.path)!r}"
    instead = ", ".join(BUILTIN_PREFIX + name for name in builtins_of(wanted))
    return (
        f"{model} is a {found or 'pipeline model_index.json does not name (no _class_name)'}; profile {profile} "
        f"needs a {wanted} model: point --sdperf-model at one (built in: {instead})"
    )


def why_not_comparable(spec: ModelSpec, workload: object, report_workload: object) -> str:
    """Why a run of `spec` on `workload` cannot stand beside a field report's figure, or "" when it can."""
    if spec.scaled_down:
        return "this run uses a tiny built-in model"
    if workload != report_workload:
        return "this run's workload differs from the report's"
    return ""


def recipe_hash(name: str) -> str:
    from sdperf.models.catalog import recipe_document

    canonical = json.dumps(recipe_document(name), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def builtin_folder(name: str) -> Path:
    return cache_root() / f"{name}-{recipe_hash(name)}"


def _hash_weights(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode("utf-8"))
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weight_digest(folder: Path) -> str:
    """SHA-256 over every safetensors file of a model folder, by relative path.

    Real weights are gigabytes and every worker asks: the digest is cached under
    SDPERF_CACHE, keyed by each file's path, size and modification time, so it is
    computed again only when a file changes.
    """
    files = sorted(Path(folder).resolve().rglob("*.safetensors"))
    stats = [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files]
    key = hashlib.sha256(json.dumps(stats).encode("utf-8")).hexdigest()
    cached = cache_root() / "digests" / f"{key}.txt"
    try:
        return cached.read_text(encoding="ascii").strip()
    except OSError:
        pass
    digest = _hash_weights(Path(folder).resolve(), files)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}")
        partial.write_text(digest, encoding="ascii")
        os.replace(partial, cached)
    except OSError:
        pass  # A read-only cache only costs the time to hash again.
    return digest

"""The package stack a result depends on: recorded by the pytest process and by each worker."""

from __future__ import annotations

from importlib import metadata

STACK_PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "tokenizers",
    "huggingface-hub",
    "numpy",
    "openvino",
    "optimum-intel",
    "optimum",
    "nncf",
    "pillow",
)

def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in STACK_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions

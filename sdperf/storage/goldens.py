"""Golden images: the hash a fixed seed must reproduce, per profile, case, model, the
versions of the packages that change pixels, and CPU kernel set: torch's CPU capability and
the CPU's vendor, whose code paths MKL and oneDNN choose by (images are bitwise comparable
only within one).

A golden is a JSON record beside the PNG it was taken from; it changes only when
a run is told to record (`--sdperf-record-golden`), never as a side effect.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# 2: the stack in the key hashes only the packages that change pixels (PIXEL_PACKAGES and the recipe's).
# 3: the kernel set in the key names the CPU's vendor too (cpu_kernels "AVX512-AuthenticAMD", was
#    cpu_capability "AVX512"): an AMD EPYC with AVX-512 drew another image than the Ice Lake the
#    AVX512 goldens came from.
GOLDEN_SCHEMA_VERSION = 3


class GoldenError(ValueError):
    """A golden record is unreadable or foreign; the message names the file."""


# Packages whose version can move a fixed-seed image's pixels on every recipe: the kernels
# (torch), the pipeline and scheduler (diffusers), the text encoders and their tokenizers.
# A recipe adds its own (openvino, optimum-intel, torchao). Everything else (accelerate,
# safetensors, huggingface-hub, an optional package the recipe does not use) leaves them alone,
# so a stack that differs only there still finds its golden.
PIXEL_PACKAGES = ("torch", "diffusers", "transformers", "tokenizers")


def stack_digest(packages: dict[str, str | None], recipe_packages: tuple[str, ...] = ()) -> str:
    """Short hash of the versions that change pixels: a new one of those gets new goldens."""
    relevant = {name: packages.get(name) for name in (*PIXEL_PACKAGES, *recipe_packages)}
    canonical = json.dumps(relevant, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class GoldenKey:
    storage_key: str
    case_id: str
    model: str
    stack: str
    cpu_kernels: str

    def stem(self) -> str:
        return f"{self.case_id}--{self.model}--stack-{self.stack}--{self.cpu_kernels}"

    def paths(self, root: Path) -> tuple[Path, Path]:
        folder = root / self.storage_key
        return folder / f"{self.stem()}.json", folder / f"{self.stem()}.png"


@dataclass(frozen=True)
class Golden:
    image_sha256: str
    weights_sha256: str
    packages: dict[str, str | None]
    recorded_at: str


def load_golden(root: Path, key: GoldenKey) -> Golden | None:
    record, _ = key.paths(root)
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise GoldenError(f"golden record {str(record)!r} is unreadable ({error}); delete it and record again") from None
    if not isinstance(data, dict) or data.get("schema") != GOLDEN_SCHEMA_VERSION:
        raise GoldenError(
            f"golden record {str(record)!r} has schema {data.get('schema') if isinstance(data, dict) else None!r}; "
            f"this sdperf reads schema {GOLDEN_SCHEMA_VERSION}: record it again"
        )
    try:
        return Golden(**{k: data[k] for k in ("image_sha256", "weights_sha256", "packages", "recorded_at")})
    except KeyError as missing:
        raise GoldenError(f"golden record {str(record)!r} lacks {missing}; record it again") from None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def record_golden(root: Path, key: GoldenKey, image_sha256: str, weights_sha256: str,
                  packages: dict[str, str | None], png: Path) -> Golden:
    golden = Golden(
        image_sha256=image_sha256,
        weights_sha256=weights_sha256,
        packages=packages,
        recorded_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    record, image = key.paths(root)
    _write_atomic(image, png.read_bytes())
    document: dict[str, Any] = {"schema": GOLDEN_SCHEMA_VERSION, "key": asdict(key), **asdict(golden)}
    _write_atomic(record, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return golden

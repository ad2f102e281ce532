"""Golden images: the hash a fixed seed must reproduce, per profile, case, model,
package stack and CPU kernel set (images are bitwise comparable only within one).

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

GOLDEN_SCHEMA_VERSION = 1


class GoldenError(ValueError):
    """A golden record is unreadable or foreign; the message names the file."""


def stack_digest(packages: dict[str, str | None]) -> str:
    """Short hash of the installed package versions: a new stack gets new goldens."""
    canonical = json.dumps({k: v for k, v in packages.items() if v}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class GoldenKey:
    storage_key: str
    case_id: str
    model: str
    stack: str
    cpu_capability: str

    def stem(self) -> str:
        return f"{self.case_id}--{self.model}--stack-{self.stack}--{self.cpu_capability}"

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
